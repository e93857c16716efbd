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
        let (changed, toNotify, finish): (Bool, [AsyncStream<Value>.Continuation], Bool) = state.withLock { state in
            guard !state.finished, state.value != newValue else { return (false, [], false) }
            state.value = newValue
            let terminal = isTerminal(newValue)
            if terminal { state.finished = true }
            let subscribers = Array(state.subscribers.values)
            if terminal { state.subscribers.removeAll() }
            return (true, subscribers, terminal)
        }
        for continuation in toNotify {
            continuation.yield(newValue)
            if finish { continuation.finish() }
        }
        return changed
    }

    /// Applies `transform` atomically; returns the resulting value.
    @discardableResult
    public func update(_ transform: (Value) -> Value) -> Value {
        // Read-modify-write under the lock, notify outside it.
        let (newValue, changed, toNotify, finish): (Value, Bool, [AsyncStream<Value>.Continuation], Bool) = state.withLock { state in
            let candidate = transform(state.value)
            guard !state.finished, state.value != candidate else { return (state.value, false, [], false) }
            state.value = candidate
            let terminal = isTerminal(candidate)
            if terminal { state.finished = true }
            let subscribers = Array(state.subscribers.values)
            if terminal { state.subscribers.removeAll() }
            return (candidate, true, subscribers, terminal)
        }
        if changed {
            for continuation in toNotify {
                continuation.yield(newValue)
                if finish { continuation.finish() }
            }
        }
        return newValue
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
