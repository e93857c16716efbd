import BenchSupport
import CoordinationCore
import CoordinationEtcd

/// Not a target: the round trip of one plain RPC (`get` = Range, `put` = Put) on a warm client,
/// to tell the cost of the transport from the cost of the lock recipe in the figures above.
func roundTrip(_ options: Options) async throws -> [String] {
    try await withStores(1, options) { stores in
        let store = stores[0]
        let key = try Key("\(options.prefix)/round-trip")
        let value = Array("v".utf8)
        try await store.put(key, value)
        for _ in 0..<options.warmupCycles { _ = try await store.get(key) }
        let clock = ContinuousClock()
        var ranges = LatencySamples()
        var puts = LatencySamples()
        for _ in 0..<options.cycles {
            let began = clock.now
            _ = try await store.get(key)
            ranges.record(began.duration(to: clock.now))
        }
        for _ in 0..<options.cycles {
            let began = clock.now
            try await store.put(key, value)
            puts.record(began.duration(to: clock.now))
        }
        try await store.delete(key)
        return [
            "swift round_trip range_p50_ms=\(fixed(ranges.percentileMilliseconds(0.5)))"
                + " range_p99_ms=\(fixed(ranges.percentileMilliseconds(0.99)))"
                + " put_p50_ms=\(fixed(puts.percentileMilliseconds(0.5))) put_p99_ms=\(fixed(puts.percentileMilliseconds(0.99)))"
                + " calls=\(options.cycles)"
        ]
    }
}
