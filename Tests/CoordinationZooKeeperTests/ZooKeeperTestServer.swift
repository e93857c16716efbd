import CoordinationCore
import CoordinationTestKit
import CoordinationZooKeeper
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The ZooKeeper servers the suites talk to, exported by `scripts/with-servers`: a standalone
/// server (`ZOOKEEPER_CONNECT`) and a 3-node ensemble (`ZOOKEEPER_ENSEMBLE_CONNECT`, with the
/// members' PIDs in `ZOOKEEPER_ENSEMBLE_PIDS`). Both allow session timeouts of 1 to 60 s.
enum ZooKeeperTestServer {
    static func environment(_ variable: String) -> String? {
        getenv(variable).map { String(cString: $0) }
    }

    static func endpoints(_ variable: String) -> [Endpoint]? {
        guard let value = getenv(variable) else { return nil }
        let endpoints = String(cString: value).split(separator: ",").compactMap { part -> Endpoint? in
            guard let colon = part.lastIndex(of: ":"), let port = Int(part[part.index(after: colon)...]) else {
                return nil
            }
            return Endpoint(host: String(part[..<colon]), port: port)
        }
        return endpoints.isEmpty ? nil : endpoints
    }

    static var standalone: [Endpoint]? { endpoints("ZOOKEEPER_CONNECT") }
    static var ensemble: [Endpoint]? { endpoints("ZOOKEEPER_ENSEMBLE_CONNECT") }
    static var isAvailable: Bool { standalone != nil }
    static var ensembleIsAvailable: Bool { ensemble != nil }

    /// The ensemble whose first member lags when ``laggingLinkPID`` is stopped (with-servers).
    static var lagging: [Endpoint]? { endpoints("ZOOKEEPER_LAGGING_CONNECT") }
    static var laggingLinkPID: Int32? {
        getenv("ZOOKEEPER_LAGGING_LINK_PID").flatMap { Int32(String(cString: $0)) }
    }
    static var laggingFollowerBound: Duration {
        guard let value = getenv("ZOOKEEPER_LAGGING_FOLLOWER_BOUND_MS"), let ms = Int64(String(cString: value))
        else { return .milliseconds(2200) }
        return .milliseconds(ms)
    }

    static var ensemblePIDs: [Int32] {
        guard let value = getenv("ZOOKEEPER_ENSEMBLE_PIDS") else { return [] }
        return String(cString: value).split(separator: ",").compactMap { Int32($0) }
    }

    /// The ensemble's `(syncLimit + 1) × tickTime` (with-servers exports it).
    static var ensembleFollowerBound: Duration {
        guard let value = getenv("ZOOKEEPER_ENSEMBLE_FOLLOWER_BOUND_MS"), let ms = Int64(String(cString: value))
        else { return .milliseconds(1200) }
        return .milliseconds(ms)
    }

    /// A configuration for `endpoints`; its follower bound is the ensemble's when they are members
    /// of the ensemble, zero otherwise (the standalone server has no followers).
    static func configuration(
        _ endpoints: [Endpoint]?, chroot: String = "/swift-coordination-tests",
        sessionTimeout: Duration = .seconds(10)
    ) throws -> ZooKeeperStore.Configuration {
        guard let endpoints else {
            throw ConformanceFailure("ZOOKEEPER_CONNECT is not set; run the tests with scripts/test")
        }
        var logger = Logger(label: "zookeeper-tests")
        logger.logLevel = .warning
        func within(_ members: [Endpoint]?) -> Bool {
            let members = members ?? []
            return endpoints.allSatisfy { endpoint in members.contains { $0 == endpoint } }
        }
        let bound: Duration =
            within(ensemble) ? ensembleFollowerBound : within(lagging) ? laggingFollowerBound : .zero
        return ZooKeeperStore.Configuration(
            endpoints: endpoints, chroot: chroot, sessionTimeout: sessionTimeout, followerBound: bound, logger: logger)
    }

    static func makeStore(chroot: String = "/swift-coordination-tests") throws -> ZooKeeperStore {
        try ZooKeeperStore(configuration: configuration(standalone, chroot: chroot))
    }
}

/// Real ZooKeeper clients for the conformance suites: each client is its own `ZooKeeperStore` (its
/// own session and connections) against the standalone server.
struct ZooKeeperBackend: ConformanceBackend {
    let name = "zookeeper"
    /// Sessions of 2 s: the negotiated timeout is what the server grants (1 to 60 s here).
    let sessionTTL: Duration = .seconds(2)

    /// Explicit, reported opt-outs.
    let optOuts: [String: String] = [
        "no gap between snapshot and changes under concurrent writes":
            "a ZooKeeper watch notification names the changed znode, not its data; the data is read "
            + "afterwards, so back-to-back writes can arrive as one change (the latest). ZooKeeper keeps "
            + "no history to read the values in between (see docs/zookeeper.md, Watches). The latest "
            + "state is never lost; the recipes rely only on that."
    ]

    /// The standalone server, under the suites' chroot.
    var peerConnectionString: String? {
        ZooKeeperTestServer.standalone.map {
            "zookeeper://" + $0.map { "\($0.host):\($0.port)" }.joined(separator: ",")
                + "/swift-coordination-tests?follower-bound=0s"
        }
    }

    func makeStore() throws -> any KeyValueStore { try ZooKeeperTestServer.makeStore() }
}
