import CoordinationCore

/// The wait every queue-based recipe shares: "am I within the first `slots` of the line; if not,
/// wait for the contender just ahead of me to go, then look again".
///
/// Only the immediate predecessor is watched, so a release wakes exactly one waiter (no herd), and
/// the line is FIFO by the backend's ordering number.
struct ContenderQueue: Sendable {
    let store: any KeyValueStore
    let line: any ContenderLine
    let prefix: Key

    init(store: any KeyValueStore, prefix: Key) {
        self.store = store
        self.line = store.line
        self.prefix = prefix
    }

    /// Waits until `me` is first in line, starting from `place` (where joining left it). Throws
    /// `lockLost` if `me` leaves the line while waiting.
    ///
    /// After the contender just ahead has gone, the line is always read again before `me` counts as
    /// first: that read also confirms that `me` is still in line at its own create revision. A
    /// contender removed while it waited (an operator's delete, a revoke, an unreported expiry) must
    /// not be granted just because the one ahead of it left — the one behind it may already have
    /// read the shorter line and be granted too (etcd's `Mutex` and Curator read again as well).
    func waitUntilFirst(_ me: Contender, from place: LinePlace?) async throws {
        var place = place
        while true {
            switch place {
            case nil:
                throw CoordinationError(
                    .lockLost,
                    "contender '\(me.key)' left the line while waiting (session ended or key removed)",
                    key: me.key.path
                )
            case .first:
                return
            case .behind(let ahead):
                try await line.waitUntilGone(ahead)
                place = try await line.place(of: me, in: prefix)
            }
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
    ///
    /// Returns the contender, and whether it waited behind another first.
    func waitForTurn(role: ContenderRole, value: [UInt8], session: Session, what: String)
        async throws(CoordinationError) -> (contender: Contender, waited: Bool)
    {
        try await store.onTaskExecutor { () async throws(CoordinationError) in
            try session.checkActive()
            let joined = try await join(role: role, value: value, session: session)
            let me = joined.contender
            do {
                if !joined.isFirst {
                    try await whileActive(session, what: what) {
                        try await waitUntilFirst(me, from: joined.place)
                    }
                    if Task.isCancelled { throw CoordinationError(.cancelled, "\(what): cancelled") }
                }
                try session.checkActive()
                return (me, !joined.isFirst)
            } catch {
                await remove(me, session: session)
                throw coordinationError(error, cancelled: Task.isCancelled, what)
            }
        }
    }

    /// Puts a contender of `role` in line (``ContenderLine/join(_:role:value:session:)``). If the
    /// join fails in a way that may still have created the contender (a lost reply), whatever it
    /// may have left is removed before the error is thrown.
    ///
    /// The line runs the join to its own end even if the caller is cancelled meanwhile (the
    /// join's contract; network backends use `runToCompletion`): a request cancelled in flight
    /// could land *after* a cleanup that looked for it. A caller cancelled meanwhile then removes
    /// the contender it got, as any cancelled waiter does.
    func join(role: ContenderRole, value: [UInt8], session: Session) async throws(CoordinationError) -> LineJoin {
        do throws(CoordinationError) {
            return try await line.join(prefix, role: role, value: value, session: session)
        } catch {
            if error.outcomeIsUnknown {
                let line = self.line
                let prefix = self.prefix
                await shielded { await line.removeContenders(of: session, in: prefix) }
            }
            throw error
        }
    }

    /// Takes `me` out of the line (only that incarnation), even from a cancelled task. A removal
    /// whose outcome stays unknown falls back to removing `session`'s contenders by session, or to
    /// ending the session (``ContenderLine/removeContenders(of:in:)``): never a silent orphan.
    func remove(_ me: Contender, session: Session) async {
        let line = self.line
        let prefix = self.prefix
        await shielded {
            do throws(CoordinationError) {
                try await line.leave(me)
            } catch  where error.code == .keyNotFound || error.code == .revisionMismatch {
                // Gone already (its session ended, or someone removed it).
            } catch {
                await line.removeContenders(of: session, in: prefix)
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

    /// The contenders among the members, first in line first, as `line` counts and orders them.
    func contenders(by line: any ContenderLine) -> [Contender] {
        line.contenders(in: prefix, from: Array(members.values))
    }
}
