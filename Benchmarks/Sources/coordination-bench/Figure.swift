/// The outcome of one measurement.
struct Figure: Sendable {
    /// What was measured, as the table shows it.
    var name: String
    /// Operations in the throughput pass.
    var operations: Int
    /// Wall-clock time of the throughput pass.
    var elapsed: Duration
    /// CPU time the process used during the throughput pass.
    var cpuTime: Duration
    /// Per-operation latencies from a separate pass (timing each operation costs a little).
    var latency: LatencySamples
    /// The target in operations per second, if there is one.
    var target: Double?
    /// Extra context for the table (what the latency column means, for example).
    var note: String?

    var perSecond: Double { Double(operations) / (elapsed.nanoseconds / 1e9) }
    var perCPUSecond: Double { Double(operations) / (cpuTime.nanoseconds / 1e9) }
}
