import CoordinationCore
import Logging
import Synchronization

/// Keeps this store's sessions alive: etcd v2 has no leases, so a session is a directory with a
/// TTL (its record) plus every key bound to it, each with the same TTL, and the keeper refreshes
/// them all (`refresh=true&prevExist=true`, keys by compare-and-swap on their index so it never
/// refreshes a key someone else has replaced).
///
/// State follows the safety rule: a round whose refreshes all came back moves the last
/// acknowledged send time forward; a failed round makes the session `suspended`; once a TTL has
/// passed since the last acknowledged send, the session is `expired` — at or before the moment
/// the server can let its keys go, because their TTLs started no earlier than that send.
final class V2SessionKeeper: Sendable {
    /// A key bound to a session: its index now, and the index of its last real write. Refreshes
    /// move `current` but not `logical`, so a revision a caller got from the write stays usable.
    struct BoundKey: Sendable {
        var current: UInt64
        var logical: UInt64
    }

    struct Tracked: Sendable {
        let session: Session
        let ttlSeconds: Int64
        var keys: [Key: BoundKey] = [:]
        var lastAckedSend: ContinuousClock.Instant
        var nextRefresh: ContinuousClock.Instant
        var refreshing = false
        var abandoned = false

        var ttl: Duration { .seconds(ttlSeconds) }
        var interval: Duration { ttl / 3 }
    }

    private let state = Mutex<[SessionID: Tracked]>([:])
    private let wake = WakeSignal()
    private let connection: V2Connection
    private let keySpace: V2KeySpace
    private let logger: Logger

    init(connection: V2Connection, keySpace: V2KeySpace, logger: Logger) {
        self.connection = connection
        self.keySpace = keySpace
        self.logger = logger
    }

    // MARK: Bookkeeping

    func add(_ session: Session, ttlSeconds: Int64, sentAt: ContinuousClock.Instant) {
        state.withLock {
            $0[session.id] = Tracked(
                session: session, ttlSeconds: ttlSeconds, lastAckedSend: sentAt,
                nextRefresh: sentAt + .seconds(ttlSeconds) / 3)
        }
        wake.signal()
    }

    func remove(_ id: SessionID) -> Tracked? {
        state.withLock { $0.removeValue(forKey: id) }
    }

    func allSessions() -> [Tracked] { state.withLock { Array($0.values) } }

    func ttlSeconds(_ id: SessionID) -> Int64? { state.withLock { $0[id]?.ttlSeconds } }

    func abandon(_ id: SessionID) {
        state.withLock { $0[id]?.abandoned = true }
    }

    /// Records that `key` was written at `index` bound to session `id` (and to no other).
    func bind(_ key: Key, to id: SessionID, index: UInt64) {
        state.withLock { sessions in
            for other in Array(sessions.keys) where other != id { sessions[other]?.keys.removeValue(forKey: key) }
            sessions[id]?.keys[key] = BoundKey(current: index, logical: index)
        }
    }

    /// Forgets `key` (written unbound, or deleted); returns the session it was bound to.
    @discardableResult
    func unbind(_ key: Key) -> SessionID? {
        state.withLock { sessions in
            for id in Array(sessions.keys) where sessions[id]?.keys.removeValue(forKey: key) != nil { return id }
            return nil
        }
    }

    /// Forgets `prefix` and every key below it.
    func unbind(under prefix: Key) {
        state.withLock { sessions in
            for id in Array(sessions.keys) {
                let kept = sessions[id]!.keys.filter { $0.key != prefix && $0.key.relative(to: prefix) == nil }
                sessions[id]!.keys = kept
            }
        }
    }

    /// The index to compare against for a conditional write to `key` that expects `revision`.
    ///
    /// Our own refreshes move a bound key's index without changing it, so a revision between the
    /// last real write and the current index means "as I last wrote it" and maps to the current
    /// index. Anything else is passed through unchanged.
    func resolve(_ key: Key, revision: UInt64) -> UInt64 {
        state.withLock { sessions in
            for tracked in sessions.values {
                if let bound = tracked.keys[key], bound.logical <= revision, revision <= bound.current {
                    return bound.current
                }
            }
            return revision
        }
    }

    // MARK: The refresh loop

    /// Refreshes due sessions and expires those past their TTL until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let now = ContinuousClock.now
                let plan = state.withLock { sessions in Self.plan(&sessions, now: now) }
                let next = plan.next
                for session in plan.expired {
                    logger.info("etcd v2 session expired", metadata: ["session": "\(session.id)"])
                    session.transition(to: .expired)
                }
                for id in plan.due {
                    group.addTask { await self.refresh(id) }
                }
                let deadline = next
                await withTaskGroup(of: Void.self) { sleeper in
                    sleeper.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
                    sleeper.addTask { await self.wake.wait() }
                    await sleeper.next()
                    sleeper.cancelAll()
                }
            }
        }
    }

    /// What the loop does at `now` (pure, so the safety rule is unit-tested): sessions one TTL
    /// past their last acknowledged send are removed and reported expired; sessions whose refresh
    /// is due (not abandoned, none in flight) are marked refreshing; `next` is the earliest moment
    /// anything else falls due.
    static func plan(_ sessions: inout [SessionID: Tracked], now: ContinuousClock.Instant) -> (
        expired: [Session], due: [SessionID], next: ContinuousClock.Instant
    ) {
        var next = now + .seconds(3600)
        var expired: [Session] = []
        var due: [SessionID] = []
        for (id, tracked) in sessions {
            let expiry = tracked.lastAckedSend + tracked.ttl
            if now >= expiry {
                expired.append(tracked.session)
                sessions.removeValue(forKey: id)
                continue
            }
            next = min(next, expiry)
            guard !tracked.abandoned, !tracked.refreshing else { continue }
            if now >= tracked.nextRefresh {
                due.append(id)
                sessions[id]?.refreshing = true
            } else {
                next = min(next, tracked.nextRefresh)
            }
        }
        return (expired, due, next)
    }

    private enum KeyOutcome: Sendable {
        case refreshed(Key, sent: UInt64, now: UInt64)
        /// Still ours at another index (an earlier refresh landed after we stopped waiting for it):
        /// take the index, but do not count this round as acknowledged for that key.
        case adopted(Key, sent: UInt64, now: UInt64)
        case gone(Key, sent: UInt64)
        case failed
    }

    /// One refresh round: the session record first, then every bound key at once.
    private func refresh(_ id: SessionID) async {
        let sentAt = ContinuousClock.now
        guard let tracked = state.withLock({ $0[id] }) else { return }
        let ttl = String(tracked.ttlSeconds)
        let timeout = max(tracked.interval * 2, .seconds(1))
        var failed = false
        var retrySoon = false
        var revoked = false
        do {
            let reply = try await connection.send(
                .put, keySpace.sessionPath(id),
                query: [("dir", "true"), ("ttl", ttl), ("refresh", "true"), ("prevExist", "true")],
                timeout: timeout, operation: "refresh session")
            if case .failure(let body) = reply {
                if body.errorCode == V2ErrorCode.keyNotFound { revoked = true } else { failed = true }
            }
        } catch {
            failed = true
        }
        if !revoked && !failed {
            let outcomes = await withTaskGroup(of: KeyOutcome.self, returning: [KeyOutcome].self) { group in
                for (key, bound) in tracked.keys {
                    group.addTask {
                        do {
                            let reply = try await self.connection.send(
                                .put, self.keySpace.path(key),
                                query: [
                                    ("ttl", ttl), ("refresh", "true"), ("prevExist", "true"),
                                    ("prevIndex", String(bound.current)),
                                ],
                                timeout: timeout, operation: "refresh", key: key)
                            switch reply {
                            case .success(let response, _):
                                return .refreshed(key, sent: bound.current, now: response.node.modifiedIndex)
                            case .failure(let body) where body.errorCode == V2ErrorCode.testFailed:
                                let read = try await self.connection.send(
                                    .get, self.keySpace.path(key), timeout: timeout, operation: "refresh", key: key)
                                if case .success(let response, _) = read,
                                    V2ValueCodec.decode(response.node.value ?? "").session == id.rawValue
                                {
                                    return .adopted(key, sent: bound.current, now: response.node.modifiedIndex)
                                }
                                return .gone(key, sent: bound.current)
                            case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
                                return .gone(key, sent: bound.current)
                            case .failure:
                                return .failed
                            }
                        } catch {
                            return .failed
                        }
                    }
                }
                var all: [KeyOutcome] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            state.withLock { sessions in
                for outcome in outcomes {
                    switch outcome {
                    case .refreshed(let key, let sent, let now):
                        if sessions[id]?.keys[key]?.current == sent { sessions[id]?.keys[key]?.current = now }
                    case .adopted(let key, let sent, let now):
                        if sessions[id]?.keys[key]?.current == sent { sessions[id]?.keys[key]?.current = now }
                        retrySoon = true
                    case .gone(let key, let sent):
                        // Deleted, expired or replaced by someone else — unless we rewrote it meanwhile.
                        if sessions[id]?.keys[key]?.current == sent { sessions[id]?.keys.removeValue(forKey: key) }
                    case .failed:
                        failed = true
                    }
                }
            }
        }
        if revoked {
            // Revoked by another client (or the record expired while we could not reach etcd).
            guard let tracked = remove(id) else { return }
            logger.info("etcd v2 session record is gone; session expired", metadata: ["session": "\(id)"])
            tracked.session.transition(to: .expired)
            wake.signal()
            return
        }
        let session: Session? = state.withLock { sessions in
            guard sessions[id] != nil else { return nil }
            sessions[id]!.refreshing = false
            if failed || retrySoon {
                // Try again soon; the expiry deadline stays where the last good round put it.
                sessions[id]!.nextRefresh = ContinuousClock.now + sessions[id]!.interval / 2
            } else {
                sessions[id]!.lastAckedSend = max(sessions[id]!.lastAckedSend, sentAt)
                sessions[id]!.nextRefresh = sentAt + sessions[id]!.interval
            }
            return sessions[id]!.session
        }
        if let session {
            if !failed && !retrySoon { session.extendGuarantee(until: sentAt + session.ttl) }
            session.transition(to: failed ? .suspended : .alive)
        }
        wake.signal()
    }
}
