import CoordinationCore

/// A barrier that holds everyone until it is removed (Curator's `DistributedBarrier`).
///
/// Whoever coordinates calls ``set(session:)``; workers call ``wait()``, which returns once the
/// barrier key is gone — removed with ``remove()`` or, if it was bound to a session, when that
/// session ends (so a crashed coordinator does not hold everyone forever).
public struct Barrier: Sendable {
    public let key: Key
    public let store: any KeyValueStore

    public init(_ key: Key, store: any KeyValueStore) {
        self.key = key
        self.store = store
    }

    /// Raises the barrier (idempotent).
    public func set(session: Session? = nil) async throws(CoordinationError) {
        try await store.put(key, [], options: PutOptions(session: session))
    }

    /// Lowers the barrier, releasing every waiter.
    public func remove() async throws(CoordinationError) {
        try await store.delete(key)
    }

    /// Whether the barrier is raised now.
    public func isSet() async throws(CoordinationError) -> Bool {
        try await store.exists(key)
    }

    /// Waits until the barrier is not raised (returns at once if it is not). Throws `cancelled` if
    /// the task is cancelled first.
    public func wait() async throws(CoordinationError) {
        do {
            try await store.waitUntilAbsent(key)
        } catch {
            throw coordinationError(error, "waiting on barrier '\(key)'")
        }
    }

    /// ``wait()`` for at most `timeout`; throws `timeout` if the barrier is still raised then.
    public func wait(timeout: Duration) async throws(CoordinationError) {
        let barrier = self
        try await withWaitTimeout(timeout, "waiting on barrier '\(key)'", key: key) {
            () async throws(CoordinationError) in
            try await barrier.wait()
        }
    }
}

/// A double barrier (Curator's `DistributedDoubleBarrier`): ``enter()`` returns once `memberCount`
/// participants have entered; ``leave()`` returns once all of them have left.
///
/// Participants are session-bound keys `prefix/<id>`; the participant who sees the count reached
/// writes `prefix/ready`, so that a slow participant still gets through after fast ones have already
/// left. The last to leave removes `ready`. Use a fresh prefix per round if rounds may overlap.
public struct DoubleBarrier: Sendable {
    public static let readyName = "ready"

    public let prefix: Key
    public let memberCount: Int
    public let session: Session
    public let store: any KeyValueStore
    /// This participant's id (a key segment).
    public let id: String

    public init(_ prefix: Key, memberCount: Int, session: Session, store: any KeyValueStore, id: String? = nil) {
        self.prefix = prefix
        self.memberCount = memberCount
        self.session = session
        self.store = store
        self.id = id ?? "\(session.id.rawValue)-\(String(UInt32.random(in: .min ... .max), radix: 16))"
    }

    /// Enters and waits until `memberCount` participants have entered.
    public func enter() async throws(CoordinationError) {
        guard memberCount > 0 else {
            throw CoordinationError(.invalidArgument, "a double barrier needs at least one member", key: prefix.path)
        }
        guard id != Self.readyName else {
            throw CoordinationError(.invalidArgument, "'\(Self.readyName)' is reserved", key: prefix.path)
        }
        let me = try prefix.appending(id)
        let ready = try prefix.appending(Self.readyName)
        try await store.put(me, [], options: .boundTo(session))
        let prefix = self.prefix
        let memberCount = self.memberCount
        let store = self.store
        do {
            try await whileActive(session, what: "entering double barrier '\(prefix)'") {
                var line = TrackedLine(prefix: prefix)
                for try await event in try await store.watchTree(prefix) {
                    line.apply(event)
                    if line.members[ready] != nil { return }
                    let participants = line.members.keys.filter { $0 != ready }.count
                    if participants >= memberCount {
                        do {
                            _ = try await store.atomicPut(ready, [], condition: .absent)
                        } catch let error as CoordinationError where error.code == .keyExists {
                            // Someone else saw the count first.
                        }
                        return
                    }
                }
                throw CoordinationError(.cancelled, "entering double barrier '\(prefix)': cancelled")
            }
        } catch {
            await shielded { try? await store.delete(me) }
            throw coordinationError(error, "entering double barrier '\(prefix)'")
        }
    }

    /// Leaves and waits until every participant has left.
    public func leave() async throws(CoordinationError) {
        let me = try prefix.appending(id)
        let ready = try prefix.appending(Self.readyName)
        try await store.delete(me)
        let prefix = self.prefix
        let store = self.store
        do {
            try await whileActive(session, what: "leaving double barrier '\(prefix)'") {
                var line = TrackedLine(prefix: prefix)
                for try await event in try await store.watchTree(prefix) {
                    line.apply(event)
                    if !line.members.keys.contains(where: { $0 != ready }) {
                        try await store.delete(ready)
                        return
                    }
                }
                throw CoordinationError(.cancelled, "leaving double barrier '\(prefix)': cancelled")
            }
        } catch {
            throw coordinationError(error, "leaving double barrier '\(prefix)'")
        }
    }
}
