import BenchSupport
import Coordination
import CoordinationCore
import CoordinationTestKit

/// One client, one session, `acquire()` + `release()` in a loop. The store is wrapped in an
/// `InstrumentedStore` to count the store calls of a cycle, and etcd's own RPC counters give the
/// RPCs it received.
///
/// With `onStoreExecutor`, the measuring loop itself runs under the preference of the store's
/// task executor (its event loop), as an application may choose to; the figure is printed as
/// `uncontended_on_store_executor` and shows what the thread hand-offs between the caller and the
/// event loop cost. Not a target: the default figure is the one compared with Go.
func uncontended(_ options: Options) async throws -> [String] {
    try await uncontended(options, onStoreExecutor: false)
}

func uncontendedOnStoreExecutor(_ options: Options) async throws -> [String] {
    try await uncontended(options, onStoreExecutor: true)
}

private func uncontended(_ options: Options, onStoreExecutor: Bool) async throws -> [String] {
    let name = onStoreExecutor ? "uncontended_on_store_executor" : "uncontended"
    let store = InstrumentedStore(try makeStore(options))
    let metrics = ServerMetrics(host: options.endpoint.host, port: options.endpoint.port)
    return try await store.withRunning { store in
        let session = try await store.makeSession(ttl: options.sessionTTL)
        let lock = Lock(try Key("\(options.prefix)/lock-uncontended"), session: session, store: store)
        for _ in 0..<options.warmupCycles {
            try await lock.acquire().release()
        }

        var samples = LatencySamples()
        var acquires = LatencySamples()
        store.resetCounts()
        let serverBefore = try metrics.unaryCounts()
        let clock = ContinuousClock()
        let cpuBefore = ProcessCPU.used()
        let start = clock.now
        try await withTaskExecutorPreference(onStoreExecutor ? store.taskExecutor : nil) {
            for _ in 0..<options.cycles {
                let began = clock.now
                let grant = try await lock.acquire()
                acquires.record(began.duration(to: clock.now))
                try await grant.release()
                samples.record(began.duration(to: clock.now))
            }
        }
        let elapsed = start.duration(to: clock.now)
        let cpu = ProcessCPU.used() - cpuBefore
        let serverAfter = try metrics.unaryCounts()
        try await session.close()

        let cycles = Double(options.cycles)
        func server(_ method: String) -> Double {
            (serverAfter[method, default: 0] - serverBefore[method, default: 0]) / cycles
        }
        let serverTotal = serverAfter.keys.reduce(0) { $0 + server($1) }
        let calls = ["joinLine", "atomicDelete", "contenders", "watch", "watchTree", "atomicPut", "get", "list"]
        let callTotal = Double(calls.reduce(0) { $0 + store.count($1) }) / cycles
        return [
            "swift \(name) ops_per_s=\(fixed(cycles / elapsed.seconds, 1)) p50_ms=\(fixed(samples.percentileMilliseconds(0.5)))"
                + " p99_ms=\(fixed(samples.percentileMilliseconds(0.99))) acquire_p50_ms=\(fixed(acquires.percentileMilliseconds(0.5)))"
                + " cycles=\(options.cycles) cpu_us_per_cycle=\(fixed(cpu.seconds * 1e6 / cycles, 1))",
            "swift \(name)_rpcs per_cycle=\(fixed(serverTotal)) Txn=\(fixed(server("Txn")))"
                + " DeleteRange=\(fixed(server("DeleteRange"))) Range=\(fixed(server("Range"))) Put=\(fixed(server("Put")))"
                + " store_calls_per_cycle=\(fixed(callTotal)) joinLine=\(fixed(Double(store.count("joinLine")) / cycles))"
                + " atomicDelete=\(fixed(Double(store.count("atomicDelete")) / cycles))",
        ]
    }
}
