import CoordinationCore

/// Runs cleanup that must happen even though the calling task was cancelled (removing a queued
/// contender, resigning). Structured concurrency has no cancellation shield, so the work runs in a
/// task that does not inherit cancellation and is awaited to completion before returning: nothing is
/// left running behind the caller's back.
func shielded(_ work: @escaping @Sendable () async -> Void) async {
    await Task { await work() }.value
}
