import Synchronization

/// A current value that many tasks can observe as an `AsyncStream`: every subscriber gets the
/// current value first, then each change in order. Once a terminal value is set, every stream
/// finishes and later subscribers get just that value.
///
/// Shared by sessions, leadership and membership so that all observable state in the library
/// behaves the same way.
public final class StateBroadcast<Value: Sendable & Equatable>: Sendable {
    private struct State {
        var value: Value
        var finished = false
        var nextID = 0
        var subscribers: [Int: AsyncStream<Value>.Continuation] = [:]
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
    @discardableResult
    public func set(_ newValue: Value) -> Bool {
        apply { _ in newValue }.changed
    }

    /// Applies `transform` atomically and delivers the result to every subscriber; returns the
    /// resulting value.
    @discardableResult
    public func update(_ transform: (Value) -> Value) -> Value {
        apply(transform).value
    }

    private func apply(_ transform: (Value) -> Value) -> (value: Value, changed: Bool) {
        // Deliver under the lock so that concurrent writers cannot reorder what subscribers see
        // (yielding to an AsyncStream never runs subscriber code); finish outside it, because
        // finishing runs termination handlers that take the lock.
        let (value, changed, toFinish): (Value, Bool, [AsyncStream<Value>.Continuation]) = state.withLock { state in
            let candidate = transform(state.value)
            guard !state.finished, state.value != candidate else { return (state.value, false, []) }
            state.value = candidate
            for continuation in state.subscribers.values { continuation.yield(candidate) }
            guard isTerminal(candidate) else { return (candidate, true, []) }
            state.finished = true
            defer { state.subscribers.removeAll() }
            return (candidate, true, Array(state.subscribers.values))
        }
        for continuation in toFinish { continuation.finish() }
        return (value, changed)
    }

    /// A stream of the current value and then every change.
    public func stream() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream<Value>.makeStream(bufferingPolicy: .unbounded)
        let registered: Int? = state.withLock { state in
            continuation.yield(state.value)
            if state.finished {
                continuation.finish()
                return nil
            }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = continuation
            return id
        }
        if let id = registered {
            continuation.onTermination = { [weak self] _ in
                self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
            }
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
