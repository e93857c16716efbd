@_spi(Backend) import CoordinationCore
import Logging
import Synchronization

/// Keeps this store's sessions alive: etcd v2 has no leases, so a session is a directory with a
/// TTL (its record) plus every key bound to it, each with the same TTL, and the keeper refreshes
/// them all (`refresh=true&prevExist=true`, keys by compare-and-swap on their index so it never
/// refreshes a key someone else has replaced).
///
/// When to refresh and what state each session is in is the core's one renewal rule
/// (``SessionRenewer``, ``RenewalSchedule``): a round whose refreshes all came back counts as an
/// acknowledged keep-alive sent when the round started; a failed round suspends the session; one
/// TTL after the last acknowledged send it is `expired` — at or before the moment the server can
/// let its keys go, because their TTLs started no earlier than that send.
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
        var abandoned = false

        var ttl: Duration { .seconds(ttlSeconds) }
    }

    private let state = Mutex<[SessionID: Tracked]>([:])
    private let renewer: SessionRenewer<SessionID>
    private let connection: V2Connection
    private let keySpace: V2KeySpace
    private let logger: Logger

    init(connection: V2Connection, keySpace: V2KeySpace, logger: Logger) {
        self.connection = connection
        self.keySpace = keySpace
        self.logger = logger
        self.renewer = SessionRenewer(noun: "session", logger: logger)
    }

    // MARK: Bookkeeping

    func add(_ session: Session, ttlSeconds: Int64, sentAt: ContinuousClock.Instant) {
        state.withLock { sessions in
            // Sessions that ended by their guarantee running out leave the bookkeeping here.
            sessions = sessions.filter { !$0.value.session.state.isTerminal }
            sessions[session.id] = Tracked(session: session, ttlSeconds: ttlSeconds)
        }
        renewer.add(session.id, session: session, ttl: .seconds(ttlSeconds), requestedAt: sentAt)
    }

    func remove(_ id: SessionID) -> Tracked? {
        renewer.remove(id)
        return state.withLock { $0.removeValue(forKey: id) }
    }

    func allSessions() -> [Tracked] { state.withLock { Array($0.values) } }

    func ttlSeconds(_ id: SessionID) -> Int64? { state.withLock { $0[id]?.ttlSeconds } }

    func abandon(_ id: SessionID) {
        state.withLock { $0[id]?.abandoned = true }
        renewer.abandon(id)
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
        await renewer.run { id in await self.refresh(id) }
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
    private func refresh(_ id: SessionID) async -> SessionRenewer<SessionID>.Outcome {
        guard let tracked = state.withLock({ $0[id] }) else { return .gone }
        let ttl = String(tracked.ttlSeconds)
        let timeout = max(RenewalRule.interval(tracked.ttl) * 2, .seconds(1))
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
            logger.info("etcd v2 session record is gone; session expired", metadata: ["session": "\(id)"])
            _ = state.withLock { $0.removeValue(forKey: id) }
            return .gone
        }
        if failed { return .failed("a refresh of the session or of one of its keys failed") }
        // Keys adopted at another index: no new guarantee from this round; refresh again soon.
        if retrySoon { return .failed("a key's refresh had landed earlier at another index") }
        return .renewed(ttl: nil)
    }
}
