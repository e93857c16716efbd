/// The events of a watch, as an `AsyncSequence` that fails with a ``CoordinationError``.
///
/// A watch ends by throwing when it fails (store closed, connection lost beyond recovery, session
/// of the store gone); it never finishes silently while the watched store is healthy. Stop watching
/// by leaving the loop or cancelling the task: the store then drops the watch.
///
/// **A slow consumer.** A watch holds at most ``bufferLimit`` events its consumer has not taken
/// yet. When one more arrives, the watch is dropped by the store and, after the events it holds,
/// ends by throwing ``CoordinationError/Code/historyLost``: the events from there on were not
/// kept. Watch again for a fresh snapshot (as after a compaction). So a consumer that stalls costs
/// bounded memory, and never sees a silent gap.
public struct WatchStream: AsyncSequence, Sendable {
    public typealias Element = WatchEvent
    public typealias Failure = CoordinationError

    private let base: AsyncThrowingStream<WatchEvent, any Error>

    /// The producing side, used by backends.
    @_spi(Backend) public struct Continuation: Sendable {
        fileprivate let base: AsyncThrowingStream<WatchEvent, any Error>.Continuation
        fileprivate let limit: Int

        /// Delivers an event; returns `false` once the consumer has gone, or has fallen
        /// ``WatchStream/bufferLimit`` events behind (the watch then ends with `historyLost`
        /// after the events it holds): either way, drop the watch.
        @discardableResult
        public func yield(_ event: WatchEvent) -> Bool {
            switch base.yield(event) {
            case .terminated:
                return false
            case .dropped:
                base.finish(
                    throwing: CoordinationError(
                        .historyLost,
                        "the watch's consumer fell \(limit) events behind; later events were not kept (watch again for a fresh snapshot)",
                        underlying: nil))
                return false
            case .enqueued:
                return true
            @unknown default:
                return true
            }
        }

        /// Ends the watch with a failure.
        public func fail(_ error: CoordinationError) {
            base.finish(throwing: error)
        }

        /// Called once when the consumer stops (left the loop, cancelled, or the stream ended).
        ///
        /// The handler runs in a task of its own, never inside the termination itself: a consumer's
        /// cancellation terminates the stream while the Swift runtime holds that task's status
        /// lock, and a backend that takes its own lock in the handler (to drop the watcher) while
        /// another thread yields events under that lock would otherwise deadlock both threads.
        public func onTermination(_ handler: @escaping @Sendable () -> Void) {
            base.onTermination = { _ in Task { handler() } }
        }
    }

    /// How many events a watch holds for its consumer before it gives up on it (see above).
    public static let bufferLimit = 10_000

    /// For backends: a new stream and its producing side (`limit`: ``bufferLimit``, or a smaller
    /// one in tests).
    @_spi(Backend) public static func makeStream(limit: Int = bufferLimit) -> (
        stream: WatchStream, continuation: Continuation
    ) {
        precondition(limit > 0)
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(limit))
        return (WatchStream(base: stream), Continuation(base: continuation, limit: limit))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = WatchEvent
        public typealias Failure = CoordinationError

        private var base: AsyncThrowingStream<WatchEvent, any Error>.AsyncIterator

        fileprivate init(base: AsyncThrowingStream<WatchEvent, any Error>.AsyncIterator) {
            self.base = base
        }

        public mutating func next() async throws(CoordinationError) -> WatchEvent? {
            do {
                return try await base.next()
            } catch {
                throw Self.map(error)
            }
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(CoordinationError) -> WatchEvent?
        {
            do {
                return try await base.next(isolation: actor)
            } catch {
                throw Self.map(error)
            }
        }

        private static func map(_ error: any Error) -> CoordinationError {
            if let error = error as? CoordinationError { return error }
            return CoordinationError(.serverError, "watch failed: \(error)", underlying: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator())
    }
}
