import CoordinationCore

/// Runs cleanup that must happen even though the calling task was cancelled (removing a queued
/// contender, resigning). Structured concurrency has no cancellation shield, so the work runs in a
/// task that does not inherit cancellation and is awaited to completion before returning: nothing is
/// left running behind the caller's back.
func shielded(_ work: @escaping @Sendable () async -> Void) async {
    await Task { await work() }.value
}

/// The outcome of racing an operation against the end of a session.
enum SessionRace<Value: Sendable>: Sendable {
    case value(Value)
    case sessionEnded(SessionState)
    case cancelled
}

/// Runs `operation` while `session` is active: if the session ends first the operation is cancelled
/// and this throws `lockLost`/`sessionExpired` (per `lostCode`); if the task is cancelled it throws
/// `cancelled`.
func whileActive<Value: Sendable>(
    _ session: Session,
    lostCode: CoordinationError.Code = .sessionExpired,
    what: String,
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try session.checkActive()
    let outcome: SessionRace<Value> = try await withThrowingTaskGroup(of: SessionRace<Value>.self) { group in
        group.addTask { .value(try await operation()) }
        group.addTask {
            guard let end = await session.waitUntilEnded() else { return .cancelled }
            return .sessionEnded(end)
        }
        defer { group.cancelAll() }
        while let next = try await group.next() {
            switch next {
            case .value, .sessionEnded: return next
            case .cancelled: continue  // the session waiter was cancelled; the operation decides
            }
        }
        return .cancelled
    }
    switch outcome {
    case .value(let value):
        return value
    case .sessionEnded(let state):
        throw CoordinationError(
            lostCode, "\(what): session \(session.id) \(state == .closed ? "was closed" : "expired")")
    case .cancelled:
        throw CoordinationError(.cancelled, "\(what): cancelled")
    }
}

extension KeyValueStore {
    /// Waits until `key` does not exist (returns at once if it is already absent).
    func waitUntilAbsent(_ key: Key) async throws {
        try await waitUntilGone(key, createdAt: nil, session: nil)
    }

}

/// A failure of a waiting task that was cancelled is reported as `cancelled`, whatever the transport
/// said about the interrupted call.
func coordinationError(_ error: any Error, cancelled: Bool = false, _ context: String) -> CoordinationError {
    if cancelled, (error as? CoordinationError)?.code != .lockLost {
        return CoordinationError(.cancelled, "\(context): cancelled")
    }
    if let error = error as? CoordinationError { return error }
    if error is CancellationError { return CoordinationError(.cancelled, "\(context): cancelled") }
    return CoordinationError(.serverError, "\(context): \(error)")
}
