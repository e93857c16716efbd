import ArgumentParser
import Coordination
import CoordinationConsul
import CoordinationEtcd
import CoordinationEtcdV2
import CoordinationMemory
import CoordinationZooKeeper
import Logging

/// A small cluster in one process: workers elect a leader, register for discovery and share a
/// locked job; then the leader is killed and another takes over. Prints a timeline.
@main
struct CoordinationDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordination-demo",
        abstract: "Leader election, discovery and a locked job on a small in-process cluster, with a leader crash."
    )

    @Option(name: .shortAndLong, help: "Where to coordinate: memory:// (default), or a server's connection string.")
    var store: String = "memory://"

    @Option(name: .shortAndLong, help: "How many workers.")
    var workers: Int = 4

    @Option(help: "Session TTL in milliseconds (how long a crash goes unnoticed).")
    var ttlMilliseconds: Int = 1500

    @Flag(help: "Show the library's own log lines.")
    var verbose = false

    func validate() throws {
        guard workers >= 2 else { throw ValidationError("--workers must be at least 2 for a failover") }
        guard ttlMilliseconds >= 10 else { throw ValidationError("--ttl-milliseconds must be at least 10") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .info : .critical
            return handler
        }
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        EtcdStore.register(in: &registry)
        EtcdV2Store.register(in: &registry)
        ConsulStore.register(in: &registry)
        ZooKeeperStore.register(in: &registry)
        let kvStore: any KeyValueStore
        do {
            kvStore = try registry.makeStore(store)
        } catch {
            throw ValidationError("\(error.message)")
        }
        let timeline = Timeline()
        // A backend may not go as low as asked (Consul: 10 s unless the agent allows less, see
        // docs/consul.md); use its minimum then.
        let ttl = max(Duration.milliseconds(ttlMilliseconds), kvStore.limits.minimumSessionTTL)
        let root = try Key("demo/run-\(String(UInt32.random(in: .min ... .max), radix: 36))")
        timeline.log("demo", "store \(kvStore.storeDescription), \(workers) workers, session TTL \(ttl)")

        let outcome = try await kvStore.withRunning { kvStore in
            try await Scenario(store: kvStore, root: root, workerCount: workers, ttl: ttl, timeline: timeline).play()
        }
        print("")
        print(outcome)
    }
}
