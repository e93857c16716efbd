import CoreMetrics
import MetricsTestKit

/// The process-wide swift-metrics backend for tests that check the library's metrics: a
/// `TestMetrics` bootstrapped on first use. `MetricsSystem` can be bootstrapped once per process,
/// and every test target of a package runs in one process, so all of them share this one.
///
/// It records from then on for every test; a check resets it first and reads what its own steps
/// added, which is exact when tests do not run in parallel (`scripts/test` runs `--no-parallel`).
public enum RecordedMetrics {
    public static let shared: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    /// Forgets everything recorded so far.
    public static func reset() { shared.reset() }

    /// The total of counter `label` with exactly these dimensions (0 if never incremented).
    public static func total(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
        shared.counterTotal(label: label, dimensions: dimensions)
    }

    /// How many values timer `label` with these dimensions recorded.
    public static func recordings(_ label: String, _ dimensions: [(String, String)]) -> Int {
        shared.timers(label: label, dimensions: dimensions).reduce(0) { $0 + $1.values.count }
    }
}
