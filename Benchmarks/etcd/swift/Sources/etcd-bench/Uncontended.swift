import BenchSupport
import Coordination
import CoordinationCore
import CoordinationTestKit

/// One client, one session, `acquire()` + `release()` in a loop. The store is wrapped in an
/// `InstrumentedStore` to count the store calls of a cycle, and etcd's own RPC counters give the
/// RPCs it received.
func uncontended(_ options: Options) async throws -> [String] {
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
        let start = clock.now
        for _ in 0..<options.cycles {
            let began = clock.now
            let grant = try await lock.acquire()
            acquires.record(began.duration(to: clock.now))
            try await grant.release()
            samples.record(began.duration(to: clock.now))
        }
        let elapsed = start.duration(to: clock.now)
        let serverAfter = try metrics.unaryCounts()
        try await session.close()

        let cycles = Double(options.cycles)
        func server(_ method: String) -> Double { (serverAfter[method, default: 0] - serverBefore[method, default: 0]) / cycles }
        let serverTotal = serverAfter.keys.reduce(0) { $0 + server($1) }
        let calls = ["joinLine", "atomicDelete", "contenders", "watch", "watchTree", "atomicPut", "get", "list", "createContender"]
        let callTotal = Double(calls.reduce(0) { $0 + store.count($1) }) / cycles
        return [
            "swift uncontended ops_per_s=\(fixed(cycles / elapsed.seconds, 1)) p50_ms=\(fixed(samples.percentileMilliseconds(0.5)))"
                + " p99_ms=\(fixed(samples.percentileMilliseconds(0.99))) acquire_p50_ms=\(fixed(acquires.percentileMilliseconds(0.5)))"
                + " cycles=\(options.cycles)",
            "swift uncontended_rpcs per_cycle=\(fixed(serverTotal)) Txn=\(fixed(server("Txn")))"
                + " DeleteRange=\(fixed(server("DeleteRange"))) Range=\(fixed(server("Range"))) Put=\(fixed(server("Put")))"
                + " store_calls_per_cycle=\(fixed(callTotal)) joinLine=\(fixed(Double(store.count("joinLine")) / cycles))"
                + " atomicDelete=\(fixed(Double(store.count("atomicDelete")) / cycles))",
        ]
    }
}
