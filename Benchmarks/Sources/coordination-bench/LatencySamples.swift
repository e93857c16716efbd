/// Per-operation durations, for percentiles.
struct LatencySamples: Sendable {
    private(set) var nanoseconds: [Double] = []

    init(capacity: Int = 0) {
        nanoseconds.reserveCapacity(capacity)
    }

    mutating func record(_ duration: Duration) {
        nanoseconds.append(duration.nanoseconds)
    }

    mutating func append(contentsOf other: LatencySamples) {
        nanoseconds.append(contentsOf: other.nanoseconds)
    }

    /// The `fraction` percentile (0.5 for p50) by nearest rank; `nil` without samples.
    func percentile(_ fraction: Double) -> Double? {
        guard !nanoseconds.isEmpty else { return nil }
        let sorted = nanoseconds.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }
}

extension Duration {
    /// The duration in nanoseconds, as a `Double`.
    var nanoseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    }
}
