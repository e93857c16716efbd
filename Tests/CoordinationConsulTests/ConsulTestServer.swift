import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Consul agent the suites talk to: `CONSUL_HTTP_ADDR` (`host:port`), exported by
/// `scripts/with-servers`, which starts a real dev agent (Consul 1.8.7) on 127.0.0.1 with
/// `session_ttl_min = 1s`.
enum ConsulTestServer {
    static let addressVariable = "CONSUL_HTTP_ADDR"

    static var address: (host: String, port: Int)? {
        guard let text = environment(addressVariable), let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...])
        else { return nil }
        return (String(text[..<colon]), port)
    }

    static var isAvailable: Bool { address != nil }

    /// The test configuration: 1 s minimum TTL (as the test agent allows), no lock-delay, short
    /// blocking waits so that a lost wake-up would show as a failure rather than a slow pass.
    static func configuration(namespace: String = "") throws -> ConsulStore.Configuration {
        guard let address else {
            throw ConformanceFailure("\(addressVariable) is not set; run the tests with scripts/test")
        }
        var logger = Logger(label: "consul-tests")
        logger.logLevel = .warning
        return ConsulStore.Configuration(
            endpoint: Endpoint(host: address.host, port: address.port),
            namespace: namespace,
            blockingWait: .seconds(20),
            lockDelay: .zero,
            lockRetryInterval: .milliseconds(200),
            minimumSessionTTL: .seconds(1),
            logger: logger
        )
    }

    static func makeStore(namespace: String = "") throws -> ConsulStore {
        try ConsulStore(configuration: configuration(namespace: namespace))
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

/// Real Consul clients for the conformance suites: each client is its own `ConsulStore` (its own
/// sessions and blocking queries) against the same agent.
struct ConsulBackend: ConformanceBackend {
    let name = "consul"
    /// The test agent's `session_ttl_min` is 1 s; 2 s leaves room for renewals (every TTL/2) on a
    /// busy machine.
    let sessionTTL: Duration = .seconds(2)

    /// Explicit, reported opt-outs.
    let optOuts: [String: String] = [
        "no gap between snapshot and changes under concurrent writes":
            "Consul's blocking queries return the latest state, not every write in between (DESIGN.md, "
            + "docs/architecture.md note 4): 60 back-to-back writes arrive coalesced. The latest state is "
            + "never lost; the recipes rely only on that (see docs/consul.md, Coalescing)."
    ]

    /// The same agent with the suite's settings (no lock-delay, 1 s minimum TTL).
    var peerConnectionString: String? {
        ConsulTestServer.address.map { "consul://\($0.host):\($0.port)?lock-delay=0s&ttl-min=1s" }
    }

    func makeStore() throws -> any KeyValueStore { try ConsulTestServer.makeStore() }
}
