import Coordination
import CoordinationConsul
import CoordinationCore
import CoordinationEtcd
import CoordinationEtcdV2
import CoordinationMemory
import CoordinationZooKeeper
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The holder of the fault suite's pause drill, in a process of its own so the suite can freeze it
/// with SIGSTOP: `coordination-fault-peer STORE-URL LOCK-NAME TTL-MS`.
///
/// It takes the lock, prints `granted <token> <t>`, then does guarded steps until the grant is
/// lost: each step stamps the system's monotonic clock first (`t`, nanoseconds, comparable across
/// processes), then asks `isLost`, and prints `step <t>` if the grant still held or `lost <t>` and
/// exits 0 if not. A step printed with a stamp later than another holder's grant is a violation of
/// "a holder learns of its loss first". Exit 2: bad arguments; 3: the store failed.
@main
struct FaultPeer {
    static func main() async {
        let arguments = CommandLine.arguments
        guard arguments.count == 4, let ttl = Int64(arguments[3]), let name = try? Key(arguments[2]) else {
            emit("usage: coordination-fault-peer STORE-URL LOCK-NAME TTL-MS")
            exit(2)
        }
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        EtcdStore.register(in: &registry)
        EtcdV2Store.register(in: &registry)
        ConsulStore.register(in: &registry)
        ZooKeeperStore.register(in: &registry)
        do {
            let store = try registry.makeStore(arguments[1])
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.run() }
                try await hold(name, ttl: .milliseconds(ttl), on: store)
            }
        } catch {
            emit("failed \(error)")
            exit(3)
        }
    }

    /// Takes the lock and does guarded steps until the grant is lost; then exits.
    static func hold(_ name: Key, ttl: Duration, on store: any KeyValueStore) async throws {
        let session = try await store.makeSession(ttl: ttl)
        let grant = try await Lock(name, session: session, store: store).acquire()
        emit("granted \(grant.token) \(monotonicNanoseconds())")
        while true {
            let stamp = monotonicNanoseconds()
            if grant.isLost {
                emit("lost \(stamp)")
                exit(0)
            }
            emit("step \(stamp)")
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Writes one line to standard output at once (unbuffered: the suite reads it as it grows).
    static func emit(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
    }

    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
