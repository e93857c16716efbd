import ArgumentParser
import Coordination
import CoordinationConsul
import CoordinationEtcd
import CoordinationEtcdV2
import CoordinationMemory
import CoordinationZooKeeper
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A service as an application would build one: a store, a registration, a leader candidate, work
/// that only the leader does, and a job guarded by a lock, all in one `ServiceGroup` that shuts
/// down gracefully on SIGTERM or SIGINT — resigning, deregistering, then closing the store.
@main
struct CoordinationService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordination-service",
        abstract:
            "An example service: registers itself, campaigns for leadership, runs a locked job; stops cleanly on SIGTERM."
    )

    @Option(
        name: .shortAndLong,
        help: "Where to coordinate (also from COORD_STORE): memory://, etcd://…, consul://…, zookeeper://…, etcdv2://…")
    var store: String?

    @Option(help: "The key under which the service keeps its registration, election and lock.")
    var root = "example"

    @Option(help: "The service's name in discovery.")
    var name = "api"

    @Option(help: "This instance's id (default: api-<pid>).")
    var id: String?

    @Option(help: "The address and port others reach this instance at.")
    var address = "127.0.0.1:8080"

    @Option(help: "Session TTL in milliseconds: how long a crash of this process goes unnoticed.")
    var ttlMilliseconds = 10_000

    @Option(help: "How often the locked job runs, in milliseconds.")
    var jobIntervalMilliseconds = 1_000

    @Option(help: "Serve Prometheus metrics at http://127.0.0.1:<port>/metrics (0: any free port).")
    var metricsPort: Int?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "coordination-service")
        // Metrics: swift-prometheus as the process's swift-metrics backend, bootstrapped before
        // anything records. Without it the library's metrics cost next to nothing.
        var metrics: MetricsEndpoint?
        if let metricsPort {
            let prometheus = PrometheusMetricsFactory()
            MetricsSystem.bootstrap(prometheus)
            metrics = MetricsEndpoint(
                registry: prometheus.registry, host: "127.0.0.1", port: metricsPort, logger: logger)
        }
        guard let connectionString = store ?? ProcessInfo.processInfo.environment["COORD_STORE"] else {
            throw ValidationError("no store: pass --store or set COORD_STORE")
        }
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        EtcdStore.register(in: &registry)
        EtcdV2Store.register(in: &registry)
        ConsulStore.register(in: &registry)
        ZooKeeperStore.register(in: &registry)
        let kvStore = try registry.makeStore(connectionString, configuration: StoreConfiguration(logger: logger))

        let base = try Key(root)
        let instanceID = id ?? "\(name)-\(ProcessInfo.processInfo.processIdentifier)"
        let (host, port) = try Self.split(address)
        let ttl = max(Duration.milliseconds(ttlMilliseconds), kvStore.limits.minimumSessionTTL)
        let registration = ServiceRegistration(
            try ServiceInstance(name: name, id: instanceID, address: host, port: port),
            base: try base.appending("services"), store: kvStore, sessionTTL: ttl, logger: logger)
        let candidate = LeaderCandidate(
            election: try base.appending("leader"), value: Array(instanceID.utf8), store: kvStore, sessionTTL: ttl,
            logger: logger)
        let leaderWork = LeaderWork(candidate: candidate, logger: logger)
        let job = LockedJob(
            lock: try base.appending("jobs/report"), store: kvStore, sessionTTL: ttl,
            interval: .milliseconds(jobIntervalMilliseconds), logger: logger)

        // The store first: a group stops its services in reverse order, so the store is closed
        // last, after the job, the candidate (which resigns) and the registration (which
        // deregisters) have used it for the last time. The readers of the candidate come after it.
        // The metrics endpoint, if any, goes before everything, so it is the last to stop.
        let services: [ServiceGroupConfiguration.ServiceConfiguration] =
            (metrics.map { [.init(service: $0)] } ?? []) + [
                .init(service: kvStore), .init(service: registration), .init(service: candidate),
                .init(service: leaderWork), .init(service: job),
            ]
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("starting", metadata: ["store": "\(kvStore.storeDescription)", "instance": "\(instanceID)"])
        try await group.run()
        logger.info("stopped cleanly: resigned, deregistered, store closed")
    }

    static func split(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw ValidationError("--address must be host:port, not '\(address)'")
        }
        return (String(address[..<colon]), port)
    }
}
