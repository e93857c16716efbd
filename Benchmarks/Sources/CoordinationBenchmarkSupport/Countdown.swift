import Synchronization

/// A reusable latch: ``arm(_:)`` sets how many ``arrive()`` calls to expect, ``wait()`` returns once
/// they all happened. One waiter at a time; the fan-out measurement re-arms it for every put.
public final class Countdown: Sendable {
    private struct State {
        var remaining = 0
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Expects `count` arrivals before the next ``wait()`` returns.
    public func arm(_ count: Int) {
        state.withLock { state in
            precondition(state.remaining == 0 && state.waiter == nil, "Countdown re-armed while in use")
            state.remaining = count
        }
    }

    /// Records one arrival; the last one wakes the waiter.
    public func arrive() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until every expected arrival happened (returns at once if they already did).
    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done: Bool = state.withLock { state in
                if state.remaining <= 0 { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }
}
