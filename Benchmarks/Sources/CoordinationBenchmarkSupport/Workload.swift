import CoordinationCore

/// The fixed shapes every measurement uses, shared by the package-benchmark suite and
/// `coordination-bench` so that both measure exactly the same thing.
public enum Workload {
    /// How many distinct keys `put` and `get` cycle over.
    public static let keyCount = 10_000
    /// The value written by `put` (and stored under every `get` key).
    public static let value: [UInt8] = Array(repeating: 0xA5, count: 64)
    /// How many tasks, each with its own session, contend for one lock in the hand-off measurement.
    public static let lockContenders = 16
    /// How many watchers receive each put in the fan-out measurement.
    public static let watchers = 1_000
    /// Long enough that no session expires during a run.
    public static let sessionTTL: Duration = .seconds(60)

    /// `bench/<area>/0` … `bench/<area>/<keyCount - 1>`, validated once up front so that key
    /// validation is not part of what is measured.
    public static func keys(_ area: String, count: Int = keyCount) -> [Key] {
        (0..<count).map { try! Key("bench/\(area)/\($0)") }
    }

    /// A key that is known to be valid.
    public static func key(_ path: String) -> Key {
        try! Key(path)
    }
}

/// The throughput the issue asks for; each is "on one core".
public enum Target {
    /// Uncontended `Lock` acquire + release pairs per second.
    public static let uncontendedLocksPerSecond = 200_000.0
    /// `get`s of existing keys per second.
    public static let getsPerSecond = 500_000.0
}
