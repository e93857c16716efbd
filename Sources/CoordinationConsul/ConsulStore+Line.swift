@_spi(Backend) import CoordinationCore
import NIOHTTP1
import Synchronization

extension ConsulStore {
    /// The line on Consul: contenders are `prefix/<session id>`, acquired with their session, first
    /// in line by CreateIndex (Go's `api.Semaphore` layout). For a lock or an election, whoever
    /// holds `api.Lock`'s `prefix/.lock` key heads the line, and the first of our contenders takes
    /// that key when it comes first (`ConsulLineLayout`), so `consul lock` and Go clients are
    /// excluded too. That write happens in ``join(_:role:value:session:)`` and
    /// ``place(of:in:)`` only; reading the line never writes.
    public struct Line: ContenderLine {
        public let store: ConsulStore

        /// One transaction creates `prefix/<session>` (if absent, acquired with the session) and
        /// reads the line; a lock or leader contender that is first then takes `.lock` as well.
        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            try await runToCompletion(on: nil) { () async throws(CoordinationError) in
                let (me, entries) = try await store.join(prefix, role: role, value: value, session: session)
                let line = try await store.resolveLine(prefix, entries: entries)
                return LineJoin(contender: me, place: LinePlace.of(me, in: line))
            }
        }

        /// Reads the line and, if a lock or leader contender of ours now heads it while nobody
        /// holds `.lock`, takes that key for it.
        public func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace? {
            let entries = try await store.readTree(prefix, operation: "place").entries
            return LinePlace.of(contender, in: try await store.resolveLine(prefix, entries: entries))
        }

        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            contenders(in: prefix, from: try await store.readTree(prefix, operation: "contenders").entries)
        }

        /// The line as `ConsulLineLayout` reads it: a `.lock` key nobody holds (left behind by
        /// `consul lock` after a release) is no contender.
        public func contenders(in prefix: Key, from entries: [Entry]) -> [Contender] {
            ConsulLineLayout.read(prefix: prefix, entries: entries).contenders
        }
    }

    public var line: Line { Line(store: self) }
}

extension ConsulStore {
    /// Creates `prefix/<session>` and reads the subtree below `prefix`, in one transaction.
    func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
        async throws(CoordinationError) -> (Contender, [Entry])
    {
        let key = try prefix.appending(session.id.rawValue)
        try validate(value: value, for: key)
        let sessionID = try activeSessionID(session, key: key)!
        let consulKey = keySpace.consulKey(key)
        let operations: [ConsulWire.TxnOperation] = [
            .kv("check-not-exists", consulKey),
            .kv("lock", consulKey, value: value, session: sessionID),
            .kv("get-tree", keySpace.consulKey(prefix) + "/"),
        ]
        let outcome = try await txn(operations, operation: "joinLine", key: key)
        guard case .committed(let pairs) = outcome else {
            if outcome.failedAt(0) {
                throw errors.make(
                    .keyExists, "session \(session.id) already has a contender under '\(prefix)'", key: key)
            }
            throw sessionFailure(outcome, session: session, key: key)
        }
        let entry = try written(pairs, key: key, value: value)
        if role == .lock || role == .leader {
            exclusiveLines.withLock { _ = $0[prefix, default: []].insert(session.id) }
        }
        // Write results come back without their value; the tree read has them all.
        var byKey: [Key: Entry] = [:]
        for pair in pairs { if let entry = keySpace.entry(pair) { byKey[entry.key] = entry } }
        byKey[key] = entry
        return (Contender(entry: entry), byKey.values.filter { $0.key.isDescendant(of: prefix) })
    }

    /// The line as `ConsulLineLayout` reads it. When the first contender is a lock or leader of one
    /// of this store's live sessions and nobody holds `prefix/.lock`, it takes that key first (with
    /// `api.Lock`'s flags and its own value), so `consul lock` and Go clients see it as the holder.
    func resolveLine(_ prefix: Key, entries initial: [Entry]) async throws(CoordinationError) -> [Contender] {
        var entries = initial
        while true {
            let reading = ConsulLineLayout.read(prefix: prefix, entries: entries)
            guard reading.lockHolder == nil, let first = reading.firstContender, let session = first.session,
                isExclusive(prefix: prefix, session: session)
            else {
                return reading.contenders
            }
            let lockKey = ConsulLineLayout.lockKey(under: prefix)
            // Guarded by the contender's own key: once that contender has left (released, or
            // cancelled, perhaps by another task of this store meanwhile), the lock key is not taken
            // for it any more.
            let outcome = try await txn(
                [
                    .kv("check-index", keySpace.consulKey(first.key), index: first.modifyRevision.value),
                    .kv(
                        "lock", keySpace.consulKey(lockKey), value: first.value, flags: ConsulLineLayout.lockFlags,
                        session: session.rawValue),
                ], operation: "acquireLockKey", key: lockKey)
            // Taken: the first contender heads the line as read (no second read needed).
            if case .committed = outcome { return reading.contenders }
            entries = try await readTree(prefix, operation: "place").entries
            if outcome.failedAt(0) { continue }
            let again = ConsulLineLayout.read(prefix: prefix, entries: entries)
            if again.lockHolder == nil, again.firstContender?.key == first.key {
                // Free, but refused: a lock-delay from an invalidated session is still running.
                // Consul offers nothing to wait on for it, so wait as api.Lock does, then retry.
                do {
                    try await Task.sleep(for: configuration.lockRetryInterval.jittered())
                } catch {
                    throw errors.make(.cancelled, "waiting out Consul's lock-delay was cancelled", key: lockKey)
                }
            }
        }
    }

    /// Whether `session` is a live session of this store with a lock or leader contender under `prefix`.
    private func isExclusive(prefix: Key, session: SessionID) -> Bool {
        guard exclusiveLines.withLock({ $0[prefix]?.contains(session) ?? false }) else { return false }
        guard let live = sessions.session(session.rawValue), live.isActive else {
            forgetExclusive(prefix: prefix, session: session)
            return false
        }
        return true
    }

    /// For a contender key of ours in an exclusive line: its prefix and session.
    func heldLockKey(for key: Key) -> (Key, SessionID)? {
        guard let prefix = key.parent else { return nil }
        let session = SessionID(String(key.name))
        return exclusiveLines.withLock { $0[prefix]?.contains(session) ?? false } ? (prefix, session) : nil
    }

    /// Forgets every line of an ended session.
    func forgetExclusive(session: SessionID) {
        exclusiveLines.withLock { lines in
            for prefix in lines.keys {
                lines[prefix]?.remove(session)
                if lines[prefix]?.isEmpty == true { lines.removeValue(forKey: prefix) }
            }
        }
    }

    func forgetExclusive(prefix: Key, session: SessionID) {
        exclusiveLines.withLock { lines in
            lines[prefix]?.remove(session)
            if lines[prefix]?.isEmpty == true { lines.removeValue(forKey: prefix) }
        }
    }
}
