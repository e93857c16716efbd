import CoordinationCore

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
