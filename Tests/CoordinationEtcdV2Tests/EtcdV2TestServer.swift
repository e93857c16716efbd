import CoordinationCore
import CoordinationEtcdV2
import CoordinationTestKit
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The etcd the v2 suites talk to: `ETCD_V2_ENDPOINT` (`host:port`), exported by
/// `scripts/with-servers`, which starts a real member with `--enable-v2=true` on 127.0.0.1.
enum EtcdV2TestServer {
    static let variable = "ETCD_V2_ENDPOINT"

    static var endpoint: (host: String, port: Int)? {
        guard let value = getenv(variable) else { return nil }
        let text = String(cString: value)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            return nil
        }
        return (String(text[..<colon]), port)
    }

    static var isAvailable: Bool { endpoint != nil }

    /// An environment variable of the run (`scripts/with-servers` exports the servers' endpoints).
    static func environmentValue(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    static func makeStore(namespace: String = "") throws -> EtcdV2Store {
        guard let endpoint else {
            throw ConformanceFailure("\(variable) is not set; run the tests with scripts/test")
        }
        var logger = Logger(label: "etcdv2-tests")
        logger.logLevel = .warning
        return try EtcdV2Store(
            configuration: .init(
                endpoint: Endpoint(host: endpoint.host, port: endpoint.port), namespace: namespace, logger: logger))
    }

    /// Runs `body` with a running store, then closes it.
    static func withStore<T: Sendable>(
        namespace: String = "", _ body: @Sendable (EtcdV2Store) async throws -> T
    ) async throws -> T {
        let store = try makeStore(namespace: namespace)
        return try await store.withRunning(body)
    }
}

/// Real etcd v2 clients for the conformance suites: each client is its own `EtcdV2Store`.
struct EtcdV2Backend: ConformanceBackend {
    let name = "etcdv2"
    /// v2 TTLs are whole seconds; 2 s leaves the refresh schedule (every third of it) room.
    let sessionTTL: Duration = .seconds(2)

    /// Explicit, reported opt-outs: etcd v2 keeps values only on leaves (see docs/etcd-v2.md).
    let optOuts: [String: String] = [
        "list is recursive, sorted, and excludes the parent":
            "needs valuesOnInnerNodes: the check stores values on 'list' and 'list/a', which also have children; "
            + "etcd v2 directories hold no value (put fails with isADirectory / notADirectory)",
        "deleteTree removes the prefix and its subtree only":
            "needs valuesOnInnerNodes: the check stores values on 'tree' and 'tree/a', which also have children; "
            + "etcd v2 directories hold no value",
    ]

    var peerConnectionString: String? { EtcdV2TestServer.endpoint.map { "etcdv2://\($0.host):\($0.port)" } }

    func makeStore() throws -> any KeyValueStore { try EtcdV2TestServer.makeStore() }
}
