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
    /// After the contender just ahead has gone, the line is always read again before `me` counts as
    /// first: that read also confirms that `me` is still in line at its own create revision. A
    /// contender removed while it waited (an operator's delete, a revoke, an unreported expiry) must
    /// not be granted just because the one ahead of it left — the one behind it may already have
    /// read the shorter line and be granted too (etcd's `Mutex` and Curator read again as well).
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
            }
            place = try await store.place(of: me, under: prefix)
        }
    }

    /// Joins the line with a contender of `role` bound to `session` and waits until it is first, on
    /// the store's task executor: the whole of `Lock.acquire` and `Election.campaign`. If the wait
    /// fails, is cancelled or the session ends, the contender is removed and the error (described
    /// by `what`, e.g. "waiting for lock 'x'") is thrown. A join whose outcome is unknown (its reply
    /// lost) removes whatever it may have left, or ends the session.
    ///
    /// Nothing is returned without a last look at the session's deadline: a process paused while
    /// it waited (its wake-up already queued) must not come back to a grant its session no longer
    /// guarantees.
    func join(role: ContenderRole, value: [UInt8], session: Session, what: String)
        async throws(CoordinationError) -> Contender
    {
        try await store.onTaskExecutor { () async throws(CoordinationError) in
            try session.checkActive()
            let position = try await joinLine(role: role, value: value, session: session)
            let me = position.contender
            do {
                if !position.isFirst {
                    try await whileActive(session, what: what) {
                        try await waitUntilFirst(me, known: position.place)
                    }
                    if Task.isCancelled { throw CoordinationError(.cancelled, "\(what): cancelled") }
                }
                try session.checkActive()
                return me
            } catch {
                await remove(me, session: session)
                throw coordinationError(error, cancelled: Task.isCancelled, what)
            }
        }
    }

    /// `store.joinLine` through ``enter(session:_:)``: the step that puts a lock or election
    /// contender in line.
    func joinLine(role: ContenderRole, value: [UInt8], session: Session) async throws(CoordinationError)
        -> LinePosition
    {
        let store = self.store
        let prefix = self.prefix
        return try await enter(session: session) { () async throws(CoordinationError) in
            try await store.joinLine(under: prefix, role: role, value: value, session: session)
        }
    }

    /// Runs `create` — a join or a contender's creation — and, if it fails in a way that may still
    /// have created the contender (a lost reply), removes what it may have left before throwing.
    ///
    /// The store runs the creation to its own end even if the caller is cancelled meanwhile
    /// (``KeyValueStore/joinLine(under:role:value:session:)``'s contract; network backends use
    /// `runToCompletion`): a request cancelled in flight could land *after* a cleanup that looked
    /// for it. A caller cancelled meanwhile then removes the contender it got, as any cancelled
    /// waiter does.
    func enter<Result: Sendable>(
        session: Session,
        _ create: @Sendable () async throws(CoordinationError) -> Result
    ) async throws(CoordinationError) -> Result {
        do throws(CoordinationError) {
            return try await create()
        } catch {
            if error.outcomeIsUnknown {
                let store = self.store
                let prefix = self.prefix
                await shielded { await store.removeContenders(of: session, under: prefix) }
            }
            throw error
        }
    }

    /// Takes `me` out of the line (only that incarnation), even from a cancelled task. A removal
    /// whose outcome stays unknown falls back to removing `session`'s contenders by session, or to
    /// ending the session (``KeyValueStore/removeContenders(of:under:)``): never a silent orphan.
    func remove(_ me: Contender, session: Session) async {
        let store = self.store
        let prefix = self.prefix
        await shielded {
            do throws(CoordinationError) {
                try await store.atomicDelete(me.key, revision: me.modifyRevision)
            } catch where error.code == .keyNotFound || error.code == .revisionMismatch {
                // Gone already (its session ended, or someone removed it).
            } catch {
                await store.removeContenders(of: session, under: prefix)
            }
        }
    }
}

/// The direct children under a prefix, kept current from a tree watch; ``line(in:)`` reads the
/// contender line from them by the store's own rules.
struct TrackedLine {
    let prefix: Key
    private(set) var members: [Key: Entry] = [:]

    init(prefix: Key) { self.prefix = prefix }

    /// Applies an event; returns whether the members changed.
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

    /// The contenders among the members, first in line first, as `store` counts and orders them.
    func line(in store: any KeyValueStore) -> [Contender] {
        store.line(from: Array(members.values), under: prefix)
    }
}
