import Synchronization

/// A current value that many tasks can observe as an `AsyncStream`: every subscriber gets the
/// current value first, then each change in order. Once a terminal value is set, every stream
/// finishes and later subscribers get just that value.
///
/// Shared by sessions, leadership and membership so that all observable state in the library
/// behaves the same way.
@_spi(Backend) public final class StateBroadcast<Value: Sendable & Equatable>: Sendable {
    /// One stream's producing side. Its consumer stopping only raises `ended`: the termination
    /// handler must not take the broadcast's lock (see ``stream()``).
    private struct Subscriber: Sendable {
        let continuation: AsyncStream<Value>.Continuation
        let ended: EndFlag
    }

    private final class EndFlag: Sendable {
        private let raised = Atomic<Bool>(false)
        func raise() { raised.store(true, ordering: .relaxed) }
        var isRaised: Bool { raised.load(ordering: .relaxed) }
    }

    private struct State {
        var value: Value
        var finished = false
        var subscribers: [Subscriber] = []
        /// Ended subscribers are dropped when the list reaches this length (amortised O(1)).
        var pruneAt = 16

        mutating func pruneIfDue() {
            guard subscribers.count >= pruneAt else { return }
            subscribers.removeAll { $0.ended.isRaised }
            pruneAt = max(16, subscribers.count * 2)
        }
    }

    private let state: Mutex<State>
    private let isTerminal: @Sendable (Value) -> Bool

    public init(_ initial: Value, isTerminal: @escaping @Sendable (Value) -> Bool = { _ in false }) {
        self.state = Mutex(State(value: initial))
        self.isTerminal = isTerminal
    }

    /// The current value.
    public var value: Value { state.withLock { $0.value } }

    /// Sets a new value; subscribers see it only if it differs from the current one. After a terminal
    /// value nothing changes any more. Returns whether the value changed.
    /// `didChange`, if given, is called with the new value when it changed, before any subscriber
    /// or waiter sees it (under the lock: it must not touch this broadcast).
    @discardableResult
    public func set(_ newValue: Value, didChange: ((Value) -> Void)? = nil) -> Bool {
        apply({ _ in newValue }, didChange: didChange).changed
    }

    /// Applies `transform` atomically and delivers the result to every subscriber; returns the
    /// resulting value.
    @discardableResult
    public func update(_ transform: (Value) -> Value) -> Value {
        apply(transform).value
    }

    private func apply(_ transform: (Value) -> Value, didChange: ((Value) -> Void)? = nil) -> (
        value: Value, changed: Bool
    ) {
        // Deliver under the lock so that concurrent writers cannot reorder what subscribers see
        // (yielding to an AsyncStream never runs subscriber code, and no termination handler takes
        // this lock); finish outside it all the same.
        let (value, changed, toFinish): (Value, Bool, [AsyncStream<Value>.Continuation]) = state.withLock { state in
            let candidate = transform(state.value)
            guard !state.finished, state.value != candidate else { return (state.value, false, []) }
            state.value = candidate
            didChange?(candidate)
            for subscriber in state.subscribers where !subscriber.ended.isRaised {
                if case .terminated = subscriber.continuation.yield(candidate) {
                    subscriber.ended.raise()
                }
            }
            state.subscribers.removeAll { $0.ended.isRaised }
            state.pruneAt = max(16, state.subscribers.count * 2)
            guard isTerminal(candidate) else { return (candidate, true, []) }
            state.finished = true
            defer { state.subscribers.removeAll() }
            return (candidate, true, state.subscribers.map(\.continuation))
        }
        for continuation in toFinish { continuation.finish() }
        return (value, changed)
    }

    /// A stream of the current value and then every change.
    public func stream() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream<Value>.makeStream(bufferingPolicy: .unbounded)
        // The termination handler only marks the subscriber. A consumer's cancellation runs it
        // while the Swift runtime holds that task's status lock, and `apply` yields under the
        // broadcast's lock, which takes the status lock of the task it resumes: a handler that took
        // the broadcast's lock would deadlock the two threads (it did, under Session.close racing a
        // cancelled lock waiter). Marked subscribers are dropped on the next change or subscription.
        let ended = EndFlag()
        continuation.onTermination = { _ in ended.raise() }
        let subscriber = Subscriber(continuation: continuation, ended: ended)
        state.withLock { state in
            continuation.yield(state.value)
            if state.finished {
                continuation.finish()
                return
            }
            state.pruneIfDue()
            state.subscribers.append(subscriber)
        }
        return stream
    }

    /// Waits until `predicate` holds for the current value and returns that value; returns `nil`
    /// if the calling task is cancelled first, or if the value became terminal without matching.
    public func wait(until predicate: (Value) -> Bool) async -> Value? {
        for await value in stream() {
            if predicate(value) { return value }
        }
        return nil
    }
}
