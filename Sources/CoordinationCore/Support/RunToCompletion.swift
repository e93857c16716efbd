/// Runs `work` — a write that, once sent, could still land on the server — to its own end even if
/// the calling task is cancelled meanwhile, and returns its outcome.
///
/// Why: a request cancelled in flight can land *after* a cleanup that looked for what it created,
/// leaving, say, a contender that nobody knows about in a line. So a backend whose calls go over a
/// network runs its contender joins (`ContenderLine.join`) through this: the call
/// ends by its own deadline, and a caller that was cancelled meanwhile gets the contender and
/// removes it, as any cancelled waiter does. The work runs in a task that does not inherit
/// cancellation, under `executor`'s preference (the store's ``KeyValueStore/taskExecutor``), and
/// is awaited. A store whose calls complete without suspending (the in-memory store) needs none
/// of this.
@_spi(Backend) public func runToCompletion<Result: Sendable>(
    on executor: (any TaskExecutor)?,
    _ work: @escaping @Sendable () async throws(CoordinationError) -> Result
) async throws(CoordinationError) -> Result {
    let outcome = await Task(executorPreference: executor) { () async -> Swift.Result<Result, CoordinationError> in
        do throws(CoordinationError) {
            return .success(try await work())
        } catch {
            return .failure(error)
        }
    }.value
    return try outcome.get()
}
