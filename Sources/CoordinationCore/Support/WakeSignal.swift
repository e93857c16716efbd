import Synchronization

/// A one-slot wake-up for a single waiting loop: `signal()` wakes the current or the next `wait()`.
/// Used by run loops that sleep until a deadline or until something changes.
@_spi(Backend) public final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes the waiter, or the next one if none waits now.
    public func signal() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Waits for a signal; returns early when the task is cancelled (a pending signal is then
    /// consumed too, which is harmless for loops that re-read their state on every wake).
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { state in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    /// Waits for a signal or until `sleep` returns, whichever comes first (a run loop sleeping
    /// until its next deadline, woken early when something changes).
    public func wait(orUntil sleep: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await sleep() }
            group.addTask { await self.wait() }
            await group.next()
            group.cancelAll()
        }
    }
}
