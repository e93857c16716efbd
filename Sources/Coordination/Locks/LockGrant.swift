import CoordinationCore
import Logging

/// Proof of holding a lock or a semaphore permit.
///
/// Carries the ``token`` to hand to whatever you guard, tells whether the grant was lost, and
/// releases it. Release is guarded: it removes only this grant's own key at its own revision, so a
/// holder that lost its grant can never release someone else's.
public struct LockGrant: Sendable, Hashable {
    /// The contender key that represents this grant.
    public let key: Key
    /// Grows with every grant under the same name; pass it to the guarded resource.
    public let token: FencingToken
    /// The session the grant lives in.
    public let session: Session
    let revision: Revision
    let createRevision: Revision
    let store: any KeyValueStore
    /// When it was granted, and by which recipe: for the hold-time metrics.
    let grantedAt: ContinuousClock.Instant
    let telemetry: RecipeTelemetry

    init(
        contender: Contender, session: Session, store: any KeyValueStore, telemetry: RecipeTelemetry,
        grantedAt: ContinuousClock.Instant = .now
    ) {
        self.key = contender.key
        self.token = contender.token
        self.revision = contender.modifyRevision
        self.createRevision = contender.createRevision
        self.session = session
        self.store = store
        self.telemetry = telemetry
        self.grantedAt = grantedAt
    }

    /// `true` once the session has ended: the grant must be assumed gone. (A key removed by an
    /// administrator is noticed by ``lost()`` and by `withLock`.)
    public var isLost: Bool { !session.isActive }

    /// Waits until the grant is lost — its session ended or its key was removed by someone else —
    /// and returns why. Returns `nil` if the calling task is cancelled first.
    public func lost() async -> CoordinationError? {
        let session = self.session
        let store = self.store
        let key = self.key
        let createRevision = self.createRevision
        return await withTaskGroup(of: CoordinationError?.self) { group in
            group.addTask {
                guard let end = await session.waitUntilEnded() else { return nil }
                return CoordinationError(
                    .lockLost,
                    "grant '\(key)' lost: session \(session.id) \(end == .closed ? "was closed" : "expired")",
                    key: key.path
                )
            }
            group.addTask {
                // Loss is decided by the grant's own session and key only: a failed watch is none.
                switch await store.waitUntilGone(key, createdAt: createRevision, owner: nil, while: session) {
                case .removed:
                    return CoordinationError(.lockLost, "grant '\(key)' lost: its key was removed", key: key.path)
                case .storeClosed:
                    return CoordinationError(.lockLost, "grant '\(key)' lost: the store was closed", key: key.path)
                case nil:
                    return nil
                }
            }
            defer { group.cancelAll() }
            for await reason in group {
                if let reason { return reason }
                if Task.isCancelled { return nil }
            }
            return nil
        }
    }

    /// Releases the grant. Throws `notHolder` if it was already lost or released.
    ///
    /// A release whose reply is lost is tried again (its key found gone then means it went through);
    /// if it still cannot be confirmed after a few tries, the session is ended so the server removes
    /// the key — the lock is never left held by nobody — and the error is thrown.
    public func release() async throws(CoordinationError) {
        try await store.onTaskExecutor { () async throws(CoordinationError) in
            try await removeIncarnation(key, createdAt: createRevision, revision: revision, session: session, in: store)
        }
        telemetry.ended(grantedAt: grantedAt, lost: false)
    }

    public static func == (lhs: LockGrant, rhs: LockGrant) -> Bool {
        lhs.key == rhs.key && lhs.revision == rhs.revision && lhs.session == rhs.session
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key)
        hasher.combine(revision)
    }
}

enum GuardedOutcome<Value: Sendable>: Sendable {
    case finished(Value)
    case lost(CoordinationError)
    case monitorStopped
}

/// Runs `body` while `grant` holds; if the grant is lost first, cancels `body`, waits for it to
/// finish and throws `lockLost`. Releases the grant afterwards in every case.
func runGuarded<Result: Sendable>(
    _ grant: LockGrant,
    _ body: @escaping @Sendable (LockGrant) async throws -> Result
) async throws -> Result {
    let outcome: Result
    do {
        outcome = try await withThrowingTaskGroup(of: GuardedOutcome<Result>.self) { group in
            group.addTask { .finished(try await body(grant)) }
            group.addTask {
                guard let reason = await grant.lost() else { return .monitorStopped }
                return .lost(reason)
            }
            var lostReason: CoordinationError?
            while true {
                let next: GuardedOutcome<Result>?
                do {
                    next = try await group.next()
                } catch {
                    // The body failed: if that was because it was cancelled on loss, say so.
                    throw lostReason ?? error
                }
                guard let next else { break }
                switch next {
                case .finished(let value):
                    group.cancelAll()
                    if let lostReason { throw lostReason }
                    return value
                case .lost(let reason):
                    lostReason = reason
                    group.cancelAll()  // cancels the body; keep looping until it finishes
                case .monitorStopped:
                    continue
                }
            }
            throw lostReason ?? CoordinationError(.cancelled, "guarded work was cancelled")
        }
    } catch {
        if let lost = error as? CoordinationError, lost.code == .lockLost {
            grant.telemetry.ended(grantedAt: grant.grantedAt, lost: true)
        }
        if !grant.session.isAbandoned {  // a crashed holder (drill) releases nothing
            await shielded { await grant.releaseAfterWork() }
        }
        if let lost = error as? CoordinationError, lost.code == .lockLost { throw lost }
        if grant.isLost {
            throw CoordinationError(.lockLost, "grant '\(grant.key)' was lost during the work: \(error)")
        }
        throw error
    }
    await shielded { await grant.releaseAfterWork() }
    return outcome
}

extension LockGrant {
    /// The release at the end of `withLock`/`withPermit`: a grant already lost has nothing to
    /// release; any other failure has already ended the session (see ``release()``), so the key is
    /// gone either way and the work's own outcome is what the caller gets.
    func releaseAfterWork() async {
        do {
            try await release()
        } catch  where error.code == .notHolder {
            // Lost meanwhile: nothing of ours is left to remove.
        } catch {
            Logger.current.warning(
                "release after guarded work failed; the session was ended so the key goes",
                metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }
}

/// Removes the incarnation of `key` created at `createRevision`, last known at `revision`.
///
/// - A `revisionMismatch` whose key is still that incarnation (the holder itself rewrote it: a
///   proclaim whose reply was lost) is retried at the current revision.
/// - A key found gone or replaced after an attempt whose outcome was unknown counts as removed.
/// - Found gone or replaced on the first attempt: `notHolder`.
/// - Still unconfirmed after ``Cleanup/attempts``: the session is ended (its keys go) and the last
///   error is thrown.
func removeIncarnation(
    _ key: Key, createdAt createRevision: Revision, revision: Revision, session: Session, in store: any KeyValueStore
) async throws(CoordinationError) {
    var revision = revision
    var unknownBefore = false
    var lastError = CoordinationError(.timeout, "release of '\(key)' not attempted", key: key.path)
    for attempt in 0..<(Cleanup.attempts + 1) {
        do throws(CoordinationError) {
            try await store.atomicDelete(key, revision: revision)
            return
        } catch  where error.code == .keyNotFound || error.code == .revisionMismatch {
            let current: Entry?
            do throws(CoordinationError) {
                current = try await store.get(key)
            } catch {
                lastError = error
                unknownBefore = true
                try? await Task.sleep(for: Cleanup.backoff(attempt))
                continue
            }
            guard let current, current.createRevision == createRevision else {
                if unknownBefore { return }  // an earlier attempt went through
                throw CoordinationError(
                    .notHolder,
                    "release of '\(key)' refused: this grant no longer holds it (lost or already released)",
                    key: key.path
                )
            }
            revision = current.modifyRevision  // still ours, rewritten since: try again at its revision
        } catch {
            lastError = error
            guard error.outcomeIsUnknown else { break }  // refused for good (permissions…): end the session
            unknownBefore = true
            try? await Task.sleep(for: Cleanup.backoff(attempt))
        }
    }
    await Cleanup.endSession(session, because: "the release of '\(key)'", lastError)
    throw lastError
}
