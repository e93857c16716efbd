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

/// A lock holder for the fault suite, in a process of its own so the suite can freeze it (SIGSTOP)
/// or kill it (SIGKILL):
///
/// - `coordination-fault-peer hold STORE-URL LOCK-NAME TTL-MS`: takes the lock, prints
///   `granted <token> <t>`, then does guarded steps until the grant is lost: each step stamps the
///   system's monotonic clock first (`t`, nanoseconds, comparable across processes), then asks
///   `isLost`, and prints `step <t>` if the grant still held, or `lost <t>` and exits 0 if not.
/// - `coordination-fault-peer churn STORE-URL LOCK-NAME TTL-MS LEDGER COUNT`: takes the lock
///   COUNT times with random holds (0–3 ms) and random cancelled waits (one in eight), and appends
///   `grant <token> <pid> <t>` after each grant and `release <token> <pid> <t>` before each
///   release to the LEDGER file (one `write` per line, `O_APPEND`), then prints `done`.
///
/// Exit 2: bad arguments; 3: the store failed.
@main
struct FaultPeer {
    static func main() async {
        let arguments = CommandLine.arguments
        guard arguments.count >= 5, let ttl = Int64(arguments[4]), let name = try? Key(arguments[3]) else {
            usage()
        }
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        EtcdStore.register(in: &registry)
        EtcdV2Store.register(in: &registry)
        ConsulStore.register(in: &registry)
        ZooKeeperStore.register(in: &registry)
        do {
            let store = try registry.makeStore(arguments[2])
            try await withThrowingTaskGroup(of: Void.self, returning: Void.self) { group in
                group.addTask { try await store.run() }
                try await perform(arguments, name: name, ttl: .milliseconds(ttl), on: store)
                group.cancelAll()
            }
            emit("done")
            exit(0)
        } catch {
            emit("failed \(error)")
            exit(3)
        }
    }

    static func perform(_ arguments: [String], name: Key, ttl: Duration, on store: any KeyValueStore) async throws {
        if arguments[1] == "hold", arguments.count == 5 {
            try await hold(name, ttl: ttl, on: store)
        } else if arguments[1] == "churn", arguments.count == 7, let count = Int(arguments[6]) {
            try await churn(name, ttl: ttl, ledger: arguments[5], count: count, on: store)
        } else {
            usage()
        }
    }

    static func usage() -> Never {
        emit("usage: coordination-fault-peer hold|churn STORE-URL LOCK-NAME TTL-MS [LEDGER COUNT]")
        exit(2)
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

    /// Takes and releases the lock `count` times, writing each grant to the ledger.
    static func churn(_ name: Key, ttl: Duration, ledger path: String, count: Int, on store: any KeyValueStore)
        async throws
    {
        let flags: Int32 = O_WRONLY | O_APPEND | O_CREAT
        let mode: mode_t = 0o644
        let ledger = open(path, flags, mode)
        guard ledger >= 0 else { throw CoordinationError(.invalidArgument, "cannot open the ledger \(path)") }
        defer { close(ledger) }
        let pid = getpid()
        var session = try await store.makeSession(ttl: ttl)
        var granted = 0
        while granted < count {
            if !session.isActive { session = try await store.makeSession(ttl: ttl) }
            let lock = Lock(name, session: session, store: store)
            if Int.random(in: 0..<8) == 0 {
                // A waiter that gives up: cancelled after a moment, granted or not.
                let attempt = Task { try await lock.acquire() }
                let pause: Int = Int.random(in: 0...3000)
                try await Task.sleep(for: .microseconds(pause))
                attempt.cancel()
                if let grant = try? await attempt.value { try? await grant.release() }
                continue
            }
            let grant: LockGrant
            do throws(CoordinationError) {
                grant = try await lock.acquire()
            } catch {
                if session.isActive { throw error }
                continue
            }
            let start = monotonicNanoseconds()
            append(ledger, "grant \(grant.token) \(pid) \(start)")
            let hold: Int = Int.random(in: 0...3000)
            try await Task.sleep(for: .microseconds(hold))
            // The guarded interval ends at the last instant the holder saw its grant still held.
            var end: Int64 = monotonicNanoseconds()
            if grant.isLost { end = start }
            append(ledger, "release \(grant.token) \(pid) \(end)")
            try await release(grant)
            granted += 1
        }
        try await session.close()
    }

    /// Releases `grant`; one lost meanwhile (its session expired) has nothing to release, and the
    /// ledger shows whether anyone overlapped it.
    static func release(_ grant: LockGrant) async throws(CoordinationError) {
        do throws(CoordinationError) {
            try await grant.release()
        } catch {
            if error.code != .notHolder { throw error }
        }
    }

    static func append(_ file: Int32, _ line: String) {
        var text = line + "\n"
        text.withUTF8 { bytes in _ = write(file, bytes.baseAddress, bytes.count) }
    }

    /// Writes one line to standard output at once (unbuffered: the suite reads it as it grows).
    static func emit(_ line: String) {
        append(1, line)
    }

    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
