import CoordinationCore

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
