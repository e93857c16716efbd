/// Durations of individual operations, for nearest-rank percentiles: the sample at rank
/// ⌈fraction × count⌉ of the sorted samples, as the peers of the benchmarks (etcd's Go client,
/// kazoo) compute them.
public struct LatencySamples: Sendable {
    private var durations: [Duration] = []

    public init() {}

    public var count: Int { durations.count }

    public var isEmpty: Bool { durations.isEmpty }

    public mutating func record(_ duration: Duration) { durations.append(duration) }

    /// The `fraction` percentile in milliseconds (0.5 for p50); NaN without samples.
    public func percentileMilliseconds(_ fraction: Double) -> Double {
        guard !durations.isEmpty else { return .nan }
        let sorted = durations.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)].milliseconds
    }
}

extension Duration {
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
    }

    public var seconds: Double { milliseconds / 1e3 }
}

/// `value` with a fixed number of decimals (`1234.5` as `1234.500` by default), as the peers print
/// with `%.3f`; `nan` for a value that is not finite.
public func fixed(_ value: Double, _ decimals: Int = 3) -> String {
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
