import Coordination
import CoordinationCore
import CoordinationMemory

/// Several tasks, each with its own session, taking turns on one ``Lock``: each loops
/// `acquire(); yield; release()`, so in steady state every contender is in line and every release
/// hands the lock to the next one.
///
/// The holder suspends once (`Task.yield()`) while it holds the lock. Without that, a contender
/// whose acquire takes the uncontended path never suspends, so on a small cooperative thread pool
/// (two threads here) it would re-take the lock many times in a row while the other tasks are not
/// even scheduled, and the benchmark would measure mostly uncontended grants.
public struct LockHandoff: Sendable {
    public let name: Key
    /// One lock (and session) per contender.
    public let locks: [Lock]

    /// Opens one session per contender on `store`.
    public init(store: MemoryStore, name: Key, contenders: Int) async throws {
        var locks: [Lock] = []
        for _ in 0..<contenders {
            let session = try await store.makeSession(ttl: Workload.sessionTTL)
            locks.append(Lock(name, session: session, store: store))
        }
        self.name = name
        self.locks = locks
    }

    /// Performs `grants` acquire/release pairs in all, split as evenly as possible over the
    /// contenders, and returns when the last one has released. The time each contender waits from
    /// calling `acquire()` to holding the lock is passed to `recordWait` when it is given.
    public func run(grants: Int, recordWait: (@Sendable (Duration) -> Void)? = nil) async throws {
        let gate = StartGate()
        let share = grants / locks.count
        let extra = grants % locks.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, lock) in locks.enumerated() {
                let count = share + (index < extra ? 1 : 0)
                group.addTask {
                    await gate.wait()
                    let clock = ContinuousClock()
                    for _ in 0..<count {
                        let start = recordWait.map { _ in clock.now }
                        let grant = try await lock.acquire()
                        if let recordWait, let start { recordWait(clock.now - start) }
                        await Task.yield()
                        try await grant.release()
                    }
                }
            }
            gate.open()
            try await group.waitForAll()
        }
    }

    /// Closes the contenders' sessions.
    public func close() async {
        for lock in locks { try? await lock.session.close() }
    }
}
