import Synchronization

/// Counts the grants of one lock among contenders of one process and times its hand-offs: a holder
/// calls ``releasing()`` right before it releases, and the next holder ``granted()`` right after its
/// acquire returned. Only one contender holds the lock at a time, so a grant pairs with the release
/// just before it. All timestamps come from one `ContinuousClock`.
///
/// Grants and hand-offs count while a window is open (``startMeasuring()`` …
/// ``stopMeasuring()``); ``Rule`` says which of them, so that each benchmark counts exactly as
/// its peer does.
public final class HandoffRecorder: Sendable {
    public enum Rule: Sendable {
        /// As etcd's Go peer: a grant in the window counts, and so does its hand-off, if any release
        /// came before it (a release from before the window too).
        case grantInWindow
        /// As kazoo's peer: every grant in the window counts; a hand-off counts only when its
        /// release also started in the window, and each release pairs with one grant at most.
        case bothEndsInWindow
    }

    private struct State {
        var measuring = false
        var lastRelease: ContinuousClock.Instant?
        var handoffs = LatencySamples()
        var grants = 0
        var started: ContinuousClock.Instant?
    }

    private let rule: Rule
    private let state = Mutex(State())
    private let allGrants = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    public init(rule: Rule) {
        self.rule = rule
    }

    /// Call right after `acquire()` returned. Returns whether the grant counts in the window.
    @discardableResult
    public func granted() -> Bool {
        let now = ContinuousClock.now
        allGrants.add(1, ordering: .relaxed)
        return state.withLock { state in
            switch rule {
            case .grantInWindow:
                guard state.measuring, let released = state.lastRelease else { return false }
                state.handoffs.record(released.duration(to: now))
            case .bothEndsInWindow:
                guard state.measuring else { return false }
                if let released = state.lastRelease {
                    state.handoffs.record(released.duration(to: now))
                    state.lastRelease = nil
                }
            }
            state.grants += 1
            return true
        }
    }

    /// Call right before `release()`.
    public func releasing() {
        let now = ContinuousClock.now
        state.withLock { state in
            if rule == .grantInWindow || state.measuring { state.lastRelease = now }
        }
    }

    public func startMeasuring() {
        state.withLock { state in
            state.measuring = true
            if rule == .bothEndsInWindow { state.lastRelease = nil }
            state.started = .now
        }
    }

    /// Closes the window: the hand-offs and grants in it, and its length.
    public func stopMeasuring() -> (handoffs: LatencySamples, grants: Int, elapsed: Duration) {
        state.withLock { state in
            state.measuring = false
            if rule == .bothEndsInWindow { state.lastRelease = nil }
            return (state.handoffs, state.grants, state.started.map { $0.duration(to: .now) } ?? .zero)
        }
    }

    /// All grants so far, in the window or not (to tell a stalled lock from a slow one).
    public var totalGrants: Int { allGrants.load(ordering: .relaxed) }

    /// Set once the window has closed: each contender finishes its turn and leaves.
    public var isStopping: Bool { stopped.load(ordering: .relaxed) }

    public func stop() { stopped.store(true, ordering: .relaxed) }
}
