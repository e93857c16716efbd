import CoordinationCore

/// The wait every queue-based recipe shares: "am I within the first `slots` of the line; if not,
/// wait for the contender just ahead of me to go, then look again".
///
/// Only the immediate predecessor is watched, so a release wakes exactly one waiter (no herd), and
/// the line is FIFO by the backend's ordering number.
struct ContenderQueue: Sendable {
    let store: any KeyValueStore
    let prefix: Key

    /// Waits until `me` is first in line. Throws `lockLost` if `me` leaves the line while waiting.
    ///
    /// When the contender just ahead was the head of the line, its departure makes `me` first
    /// without another read: the line is ordered by a number that only grows, so nobody who joins
    /// later can get ahead. That keeps a read off the hand-off path (the next holder starts one
    /// round trip sooner). Otherwise, or where the head takes effect only on a read (Consul), the
    /// line is read again.
    /// `known` is the place joining left it in, if the backend told it (saves the first read).
    func waitUntilFirst(_ me: Contender, known: LinePlace? = nil) async throws {
        var place: LinePlace?
        if let known { place = known } else { place = try await store.place(of: me, under: prefix) }
        while true {
            guard let current = place else {
                throw CoordinationError(
                    .lockLost,
                    "contender '\(me.key)' left the line while waiting (session ended or key removed)",
                    key: me.key.path
                )
            }
            if current.index == 0 { return }
            if let predecessor = current.predecessor {
                try await store.waitUntilGone(
                    predecessor.key, createdAt: predecessor.createRevision, session: predecessor.session)
                if current.index == 1, !store.capabilities.contains(.headTakesEffectOnRead) { return }
            }
            place = try await store.place(of: me, under: prefix)
        }
    }

    /// Joins the line with a contender of `role` bound to `session` and waits until it is first, on
    /// the store's task executor: the whole of `Lock.acquire` and `Election.campaign`. If the wait
    /// fails, is cancelled or the session ends, the contender is removed and the error (described
    /// by `what`, e.g. "waiting for lock 'x'") is thrown.
    func join(role: ContenderRole, value: [UInt8], session: Session, what: String)
        async throws(CoordinationError) -> Contender
    {
        try await store.onTaskExecutor { () async throws(CoordinationError) in
            try session.checkActive()
            let position = try await store.joinLine(under: prefix, role: role, value: value, session: session)
            let me = position.contender
            if position.isFirst { return me }
            do {
                try await whileActive(session, what: what) {
                    try await waitUntilFirst(me, known: position.place)
                }
                if Task.isCancelled { throw CoordinationError(.cancelled, "\(what): cancelled") }
                return me
            } catch {
                await remove(me)
                throw coordinationError(error, cancelled: Task.isCancelled, what)
            }
        }
    }

    /// Takes `me` out of the line (only that incarnation), even from a cancelled task.
    func remove(_ me: Contender) async {
        let store = self.store
        await shielded { try? await store.atomicDelete(me.key, revision: me.modifyRevision) }
    }

    /// Whether `me` is first in line right now.
    func isFirst(_ me: Contender) async throws -> Bool {
        let line = try await store.contenders(under: prefix)
        return line.first?.key == me.key
    }
}

/// The line of direct children under a prefix, kept current from a tree watch.
struct TrackedLine {
    let prefix: Key
    private(set) var members: [Key: Entry] = [:]

    init(prefix: Key) { self.prefix = prefix }

    /// Applies an event; returns whether the line changed.
    @discardableResult
    mutating func apply(_ event: WatchEvent) -> Bool {
        switch event {
        case .snapshot(let snapshot):
            let fresh = Dictionary(
                snapshot.entries.filter { $0.key.isChild(of: prefix) }.map { ($0.key, $0) },
                uniquingKeysWith: { _, last in last }
            )
            defer { members = fresh }
            return fresh != members
        case .put(let entry):
            guard entry.key.isChild(of: prefix) else { return false }
            let old = members.updateValue(entry, forKey: entry.key)
            return old != entry
        case .deleted(let deletion):
            return members.removeValue(forKey: deletion.key) != nil
        }
    }

    /// Members first in line first.
    var ordered: [Entry] { members.values.sorted { $0.createRevision < $1.createRevision } }

    /// The position of `key` in line, if present.
    func position(of key: Key) -> Int? { ordered.firstIndex { $0.key == key } }
}
