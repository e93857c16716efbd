/// The events of a watch, as an `AsyncSequence` that fails with a ``CoordinationError``.
///
/// A watch ends by throwing when it fails (store closed, connection lost beyond recovery, session
/// of the store gone); it never finishes silently while the watched store is healthy. Stop watching
/// by leaving the loop or cancelling the task: the store then drops the watch.
public struct WatchStream: AsyncSequence, Sendable {
    public typealias Element = WatchEvent
    public typealias Failure = CoordinationError

    private let base: AsyncThrowingStream<WatchEvent, any Error>

    /// The producing side, used by backends.
    @_spi(Backend) public struct Continuation: Sendable {
        fileprivate let base: AsyncThrowingStream<WatchEvent, any Error>.Continuation

        /// Delivers an event; returns `false` once the consumer has gone.
        @discardableResult
        public func yield(_ event: WatchEvent) -> Bool {
            switch base.yield(event) {
            case .terminated: false
            default: true
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

    /// For backends: a new stream and its producing side.
    @_spi(Backend) public static func makeStream() -> (stream: WatchStream, continuation: Continuation) {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream(bufferingPolicy: .unbounded)
        return (WatchStream(base: stream), Continuation(base: continuation))
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
