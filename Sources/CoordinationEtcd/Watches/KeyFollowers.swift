@_spi(Backend) import CoordinationCore
import Synchronization

/// How an etcd waiter waits for the contender ahead of it to go: one watch per awaited key that
/// stays open for a while after its last waiter, instead of a new watch per wait.
///
/// Why: etcd starts a watch "from now" at the revision it read just before registering it. If a
/// write lands in between, the watch is registered as behind ("unsynced") and its first events
/// wait for etcd's catch-up loop, which runs every 100 ms. Under a busy lock that happened to
/// about one hand-off in a hundred (the benchmark's p99.9 was 60–100 ms). A watch that is kept is
/// caught up after its first 100 ms at worst and is live from then on; and a contender usually
/// waits for the same key again (a line of contenders keeps its order), so most waits start with
/// the key's state already known and cost no request at all.
///
/// The state of a followed key is the fold of its watch: the snapshot, then every change, each
/// with its revision. A waiter that saw the key's incarnation created at revision `c` is answered
/// only from a state at revision `c` or later, so a follower that is behind can never say
/// "gone" about an incarnation it has not seen yet.
final class KeyFollowers: Sendable {
    typealias Watcher = @Sendable (Key) async throws(CoordinationError) -> WatchStream

    private struct Waiter {
        let createdAt: Revision
        let session: SessionID?
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct Follower {
        /// Tells this following from an earlier one of the same key whose watch is still winding down.
        let generation: UInt64
        /// The key's entry (nil: absent) as of `revision`, once the snapshot has arrived.
        var known: (entry: Entry?, revision: Revision)?
        var waiters: [UInt64: Waiter] = [:]
        var task: Task<Void, Never>?
        var idleSince: ContinuousClock.Instant?
    }

    private struct State {
        var followers: [Key: Follower] = [:]
        var nextWaiter: UInt64 = 0
        var nextGeneration: UInt64 = 0
        var closed = false
    }

    /// How long a key stays followed after its last waiter has gone.
    let idleTimeout: Duration
    /// At most this many idle keys are kept; the longest idle go first.
    let maximumIdle: Int
    private let state = Mutex(State())
    private let executor: (any TaskExecutor)?

    init(idleTimeout: Duration = .seconds(5), maximumIdle: Int = 32, executor: (any TaskExecutor)?) {
        self.idleTimeout = idleTimeout
        self.maximumIdle = maximumIdle
        self.executor = executor
    }

    /// Returns once the incarnation of `key` created at `createdAt` is gone (absent, deleted,
    /// created again, or — with `session` — no longer bound to that session).
    /// `watch` starts the watch of a key that is not followed yet.
    func waitUntilGone(_ key: Key, createdAt: Revision, session: SessionID?, watch: @escaping Watcher) async throws {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let waiter = Waiter(createdAt: createdAt, session: session, continuation: continuation)
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    if state.closed { return .failure(CoordinationError(.storeClosed, "the store was closed")) }
                    if Task.isCancelled {
                        return .failure(CoordinationError(.cancelled, "stopped waiting for '\(key)' to be removed"))
                    }
                    sweep(&state, now: .now)
                    var follower: Follower
                    if let existing = state.followers[key] {
                        follower = existing
                    } else {
                        follower = Follower(generation: state.nextGeneration)
                        state.nextGeneration += 1
                    }
                    follower.idleSince = nil
                    if let known = follower.known, Self.isGone(known, for: waiter) {
                        state.followers[key] = follower
                        markIdleIfDone(&follower, key: key, in: &state)
                        return .success(())
                    }
                    follower.waiters[id] = waiter
                    if follower.task == nil {
                        follower.task = startFollowing(key, generation: follower.generation, watch: watch)
                    }
                    state.followers[key] = follower
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard var follower = state.followers[key], let waiter = follower.waiters.removeValue(forKey: id)
                else { return nil }
                markIdleIfDone(&follower, key: key, in: &state)
                return waiter
            }
            waiter?.continuation.resume(
                throwing: CoordinationError(.cancelled, "stopped waiting for '\(key)' to be removed"))
        }
    }

    /// Stops following every key; waiters fail with `storeClosed`.
    func close() {
        let (tasks, waiters) = state.withLock { state in
            state.closed = true
            defer { state.followers.removeAll() }
            return (
                state.followers.values.compactMap(\.task),
                state.followers.values.flatMap { $0.waiters.values }
            )
        }
        for task in tasks { task.cancel() }
        for waiter in waiters {
            waiter.continuation.resume(throwing: CoordinationError(.storeClosed, "the store was closed"))
        }
    }

    /// Keys followed right now (for the tests).
    var followedKeys: [Key] { state.withLock { Array($0.followers.keys) } }

    private static func isGone(_ known: (entry: Entry?, revision: Revision), for waiter: Waiter) -> Bool {
        guard known.revision >= waiter.createdAt else { return false }
        guard let entry = known.entry else { return true }
        if entry.createRevision != waiter.createdAt { return true }
        if let session = waiter.session, entry.session != session { return true }
        return false
    }

    // MARK: - Following (state lock held unless said otherwise)

    private func startFollowing(_ key: Key, generation: UInt64, watch: @escaping Watcher) -> Task<Void, Never> {
        Task(executorPreference: executor) { [weak self] in
            do {
                let events = try await watch(key)
                for try await event in events {
                    guard let self else { return }
                    self.apply(event, to: key, generation: generation)
                }
                self?.stopFollowing(
                    key, generation: generation, CoordinationError(.cancelled, "the watch of '\(key)' ended"))
            } catch {
                self?.stopFollowing(key, generation: generation, error)
            }
        }
    }

    /// Folds one event into the key's state and answers the waiters it satisfies (lock not held).
    private func apply(_ event: WatchEvent, to key: Key, generation: UInt64) {
        let known: (entry: Entry?, revision: Revision)
        switch event {
        case .snapshot(let snapshot): known = (snapshot.entries.first { $0.key == key }, snapshot.revision)
        case .put(let entry): known = (entry, entry.modifyRevision)
        case .deleted(let deletion): known = (nil, deletion.revision)
        }
        let satisfied = state.withLock { state -> [Waiter] in
            guard var follower = state.followers[key], follower.generation == generation else { return [] }
            follower.known = known
            var satisfied: [Waiter] = []
            for (id, waiter) in follower.waiters where Self.isGone(known, for: waiter) {
                follower.waiters.removeValue(forKey: id)
                satisfied.append(waiter)
            }
            state.followers[key] = follower
            if !satisfied.isEmpty { markIdleIfDone(&follower, key: key, in: &state) }
            return satisfied
        }
        for waiter in satisfied { waiter.continuation.resume() }
    }

    /// The watch failed or ended: its waiters fail with the reason and the key is forgotten (lock
    /// not held).
    private func stopFollowing(_ key: Key, generation: UInt64, _ error: any Error) {
        let waiters = state.withLock { state -> [Waiter] in
            guard state.followers[key]?.generation == generation,
                let follower = state.followers.removeValue(forKey: key)
            else { return [] }
            return Array(follower.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
    }

    private func markIdleIfDone(_ follower: inout Follower, key: Key, in state: inout State) {
        if follower.waiters.isEmpty, follower.idleSince == nil { follower.idleSince = .now }
        state.followers[key] = follower
    }

    /// Stops following keys idle for longer than `idleTimeout`, and the longest idle beyond
    /// `maximumIdle`.
    private func sweep(_ state: inout State, now: ContinuousClock.Instant) {
        var idle = state.followers.compactMap { key, follower in follower.idleSince.map { (key, $0) } }
        guard !idle.isEmpty else { return }
        idle.sort { $0.1 < $1.1 }
        let excess = max(0, idle.count - maximumIdle)
        for (index, (key, since)) in idle.enumerated() where index < excess || now - since > idleTimeout {
            state.followers.removeValue(forKey: key)?.task?.cancel()
        }
    }
}
