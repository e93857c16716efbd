import BenchSupport
import Coordination
import CoordinationCore
import CoordinationZooKeeper

/// One client, one `Lock` at `<prefix>/uncontended`, `acquire()` + `release()` in a loop on a free
/// lock, as kazoo_bench.py's `uncontended`: after the warm-up cycles, each cycle is timed, and the
/// server's `Received` counter before and after the loop gives the requests per cycle.
func uncontended(_ options: Options, _ counters: ServerCounters) async throws {
    let cycles = options.cycles
    let (cycleSamples, acquireSamples, loop, delta) = try await withStores(1, options) { stores in
        let store = stores[0]
        let session = try await store.makeSession(ttl: options.sessionTTL)
        // One Lock for the whole run, as an application holding a lock per resource would.
        let lock = Lock(try options.prefix.appending("uncontended"), session: session, store: store)

        for _ in 0..<options.warmupCycles {
            try await lock.acquire().release()
        }

        var cycleSamples = LatencySamples()
        var acquireSamples = LatencySamples()
        let clock = ContinuousClock()
        let before = counters.read()
        let loopStart = clock.now
        for _ in 0..<cycles {
            let start = clock.now
            let grant = try await lock.acquire()
            let acquired = clock.now
            try await grant.release()
            let end = clock.now
            cycleSamples.record(start.duration(to: end))
            acquireSamples.record(start.duration(to: acquired))
        }
        let loop = loopStart.duration(to: clock.now)
        let after = counters.read()
        try? await session.close()
        return (cycleSamples, acquireSamples, loop, ServerCounters.delta(before, after))
    }

    var figures = [
        ("ops_per_s", fixed(Double(cycles) / loop.seconds, 1)),
        ("p50_ms", fixed(cycleSamples.percentileMilliseconds(0.50))),
        ("p99_ms", fixed(cycleSamples.percentileMilliseconds(0.99))),
        ("acquire_p50_ms", fixed(acquireSamples.percentileMilliseconds(0.50))),
    ]
    if let delta {
        figures.append(("requests_per_cycle", fixed(Double(delta.received) / Double(cycles), 2)))
    }
    figures.append(("cycles", "\(cycles)"))
    result("uncontended", figures)
    let figure = Dictionary(uniqueKeysWithValues: figures)
    note(
        "uncontended: \(figure["ops_per_s"]!) cycles/s, cycle p50 \(figure["p50_ms"]!) ms, "
            + "p99 \(figure["p99_ms"]!) ms, requests/cycle \(figure["requests_per_cycle"] ?? "n/a")")
}
