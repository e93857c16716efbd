import CoordinationCore

/// Runs `wait` (a recipe's wait that, when cancelled, leaves no key and throws `cancelled`) for at
/// most `timeout`. Past it the wait is cancelled — its contender is removed as for any cancellation —
/// and this throws `timeout` once the wait has returned. A wait that succeeds as the deadline passes
/// still returns its result (the grant is real; giving it up here would leave its key behind).
/// Cancelling the calling task throws `cancelled`, as without a timeout.
func withWaitTimeout<Result: Sendable>(
    _ timeout: Duration,
    _ what: String,
    key: Key,
    _ wait: @escaping @Sendable () async throws(CoordinationError) -> Result
) async throws(CoordinationError) -> Result {
    guard timeout > .zero else {
        throw CoordinationError(.invalidArgument, "\(what): the timeout must be longer than zero", key: key.path)
    }
    let (outcome, timedOut) = await withTaskGroup(of: WaitChild<Result>.self) { group in
        group.addTask {
            do throws(CoordinationError) {
                return .finished(.success(try await wait()))
            } catch {
                return .finished(.failure(error))
            }
        }
        group.addTask {
            // Stopped early (without firing) when the wait ends first and the group is cancelled.
            .timer(fired: (try? await Task.sleep(for: timeout)) != nil)
        }
        var outcome: Swift.Result<Result, CoordinationError>?
        var timedOut = false
        while let next = await group.next() {
            switch next {
            case .finished(let result):
                outcome = result
                group.cancelAll()  // the wait ended: stop the timer
            case .timer(let fired):
                timedOut = fired
                group.cancelAll()  // end the wait (it removes its key), then collect it
            }
        }
        return (outcome ?? .failure(CoordinationError(.cancelled, "\(what): cancelled", key: key.path)), timedOut)
    }
    switch outcome {
    case .success(let result):
        return result
    case .failure(let error) where error.code == .cancelled && timedOut && !Task.isCancelled:
        throw CoordinationError(
            .timeout, "\(what): not done within \(timeout); the wait was given up and left no key", key: key.path)
    case .failure(let error):
        throw error
    }
}

/// What one child of ``withWaitTimeout(_:_:key:_:)`` ended with.
private enum WaitChild<Result: Sendable>: Sendable {
    case finished(Swift.Result<Result, CoordinationError>)
    /// The timer: `true` if it fired, `false` if it was stopped first.
    case timer(fired: Bool)
}
