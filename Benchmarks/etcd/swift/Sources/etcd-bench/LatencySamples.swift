/// Durations of individual operations, for nearest-rank percentiles (the Go peer computes them
/// the same way).
struct LatencySamples: Sendable {
    private(set) var durations: [Duration] = []

    var count: Int { durations.count }

    mutating func record(_ duration: Duration) { durations.append(duration) }

    /// The `fraction` percentile in milliseconds (0.5 for p50); NaN without samples.
    func percentileMilliseconds(_ fraction: Double) -> Double {
        guard !durations.isEmpty else { return .nan }
        let sorted = durations.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)].milliseconds
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
    }

    var seconds: Double { milliseconds / 1e3 }
}

/// `1234.5` as `1234.500`: three decimals, as the Go peer prints.
func fixed(_ value: Double, _ decimals: Int = 3) -> String {
    guard value.isFinite else { return "nan" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (value * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(abs(scaled) - abs(Double(whole)) * scale)
    guard decimals > 0 else { return "\(whole)" }
    let digits = String(fraction)
    let sign = value < 0 && whole == 0 ? "-" : ""
    return "\(sign)\(whole).\(String(repeating: "0", count: decimals - digits.count))\(digits)"
}
