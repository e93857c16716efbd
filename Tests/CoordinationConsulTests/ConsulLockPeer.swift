import CoordinationTestKit

/// A real `consul lock PREFIX CMD` process (Debian 11's consul 1.8.7, the binary
/// `scripts/with-servers` exports as `CONSUL_BINARY`): it holds `PREFIX/.lock` through Go's
/// `api.Lock` while CMD runs.
enum ConsulLockPeer {
    static var binary: String? { ConsulTestServer.environment("CONSUL_BINARY") }

    static func start(prefix: String, shellCommand: String) throws -> PeerProcess {
        guard let binary, let address = ConsulTestServer.environment(ConsulTestServer.addressVariable) else {
            throw ConformanceFailure("CONSUL_BINARY / CONSUL_HTTP_ADDR not set; run the tests with scripts/test")
        }
        return try PeerProcess(
            name: "consul lock", executable: binary, arguments: ["lock", "-http-addr=\(address)", prefix, shellCommand])
    }
}
