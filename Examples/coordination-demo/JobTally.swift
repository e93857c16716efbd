import Synchronization

/// How many jobs each worker has run, and a stream of the tally after every change, so the
/// narrator can wait for it like for any other stream.
final class JobTally: Sendable {
    private struct State {
        var counts: [String: Int] = [:]
        var subscribers: [AsyncStream<[String: Int]>.Continuation] = []
    }
    private let state = Mutex(State())

    /// The tally now.
    var counts: [String: Int] { state.withLock { $0.counts } }

    /// Counts one more job run by `worker`.
    func record(_ worker: String) {
        let (counts, subscribers) = state.withLock { state in
            state.counts[worker, default: 0] += 1
            return (state.counts, state.subscribers)
        }
        // Outside the lock: a subscriber only ever needs the newest tally.
        for subscriber in subscribers { subscriber.yield(counts) }
    }

    /// The tally now, then after every change (the newest one when the reader falls behind).
    func updates() -> AsyncStream<[String: Int]> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: [String: Int].self, bufferingPolicy: .bufferingNewest(1))
        let current = state.withLock { state in
            state.subscribers.append(continuation)
            return state.counts
        }
        continuation.yield(current)
        return stream
    }
}
