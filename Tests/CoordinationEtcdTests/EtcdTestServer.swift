import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Logging
import Testing

/// The etcd the suite talks to: `ETCD_ENDPOINTS` (`host:port[,host:port…]`), exported by
/// `scripts/with-servers`, which starts a real member on 127.0.0.1.
enum EtcdTestServer {
    static let endpointsVariable = "ETCD_ENDPOINTS"

    static var endpoints: [Endpoint]? {
        guard let text = environment(endpointsVariable), !text.isEmpty else { return nil }
        return text.split(separator: ",").compactMap { item in
            guard let colon = item.lastIndex(of: ":"), let port = Int(item[item.index(after: colon)...]) else {
                return nil
            }
            return Endpoint(host: String(item[..<colon]), port: port)
        }
    }

    static var isAvailable: Bool { endpoints != nil }

    static func makeStore(namespace: String = "") throws -> EtcdStore {
        guard let endpoints else {
            throw ConformanceFailure("\(endpointsVariable) is not set; run the tests with scripts/test")
        }
        var logger = Logger(label: "etcd-tests")
        logger.logLevel = .warning
        return try EtcdStore(configuration: .init(endpoints: endpoints, namespace: namespace, logger: logger))
    }

    /// Puts `value` at `key` and expects a watch of the key, opened first, to report that put.
    static func expectPutSeenOnWatch(_ store: any KeyValueStore, _ key: Key, _ value: [UInt8]) async throws {
        let events = try await store.watch(key)
        try await store.put(key, value)
        let seen = try await collect(events, 2)
        guard case .put(let entry) = seen[1] else {
            Issue.record("expected the put on the watch, got \(seen)")
            return
        }
        #expect(entry.value == value)
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Real etcd clients for the conformance suites: each client is its own `EtcdStore` (its own
/// connection, lease stream and watch stream) to the same member.
struct EtcdBackend: ConformanceBackend {
    let name = "etcd"
    /// etcd's smallest lease TTL with default election settings is about 2 s; 4 s keeps sessions
    /// alive on a machine whose cores are saturated by other work (with 2 s a keep-alive round that
    /// waited over a second for a CPU was seen to expire a session, correctly, mid-check).
    let sessionTTL: Duration = .seconds(4)

    /// Explicit, reported opt-outs (see the closing note of the etcd issue).
    let optOuts: [String: String] = [:]

    var peerConnectionString: String? {
        EtcdTestServer.endpoints.map { "etcd://" + $0.map { "\($0.host):\($0.port)" }.joined(separator: ",") }
    }

    func makeStore() throws -> any KeyValueStore { try EtcdTestServer.makeStore() }
}
