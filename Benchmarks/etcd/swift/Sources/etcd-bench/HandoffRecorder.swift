import Synchronization

/// Times lock handoffs among contenders in one process: the holder stamps the moment it starts to
/// release, and the next holder, once granted, measures from that stamp. Only a holder writes the
/// stamp, so each grant reads the release of the holder just before it.
final class HandoffRecorder: Sendable {
    private struct Window {
        var measuring = false
        var handoffs = LatencySamples()
        var grants = 0
        var started: ContinuousClock.Instant?
    }

    private let origin = ContinuousClock.now
    /// Nanoseconds from `origin` to the last release; -1 before the first.
    private let lastRelease = Atomic<Int64>(-1)
    private let window = Mutex(Window())
    /// All grants, measured or not (to tell a stalled lock from a slow one).
    let totalGrants = Atomic<Int>(0)
    /// Set when the window has closed: every contender takes the lock once more and leaves.
    let stopping = Atomic<Bool>(false)

    private func now() -> Int64 {
        let (seconds, attoseconds) = origin.duration(to: .now).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Call right after `acquire()` returned.
    func granted() {
        let grantedAt = now()
        let released = lastRelease.load(ordering: .acquiring)
        totalGrants.add(1, ordering: .relaxed)
        guard released >= 0 else { return }
        window.withLock { window in
            guard window.measuring else { return }
            window.handoffs.record(.nanoseconds(grantedAt - released))
            window.grants += 1
        }
    }

    /// Call right before `release()`.
    func releasing() {
        lastRelease.store(now(), ordering: .releasing)
    }

    func startMeasuring() {
        window.withLock { window in
            window.measuring = true
            window.started = .now
        }
    }

    /// Closes the window: the handoffs and grants in it, and its length.
    func stopMeasuring() -> (handoffs: LatencySamples, grants: Int, elapsed: Duration) {
        window.withLock { window in
            window.measuring = false
            return (window.handoffs, window.grants, window.started!.duration(to: .now))
        }
    }
}
