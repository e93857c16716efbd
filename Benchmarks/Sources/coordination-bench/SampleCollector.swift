import Synchronization

/// Latency samples recorded from many tasks at once.
final class SampleCollector: Sendable {
    private let samples = Mutex(LatencySamples())

    func record(_ duration: Duration) {
        samples.withLock { $0.record(duration) }
    }

    var collected: LatencySamples { samples.withLock { $0 } }
}
