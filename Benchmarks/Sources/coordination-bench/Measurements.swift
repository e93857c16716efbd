import Coordination
import CoordinationBenchmarkSupport
import CoordinationCore
import CoordinationMemory

/// The five MemoryStore measurements of the package-benchmark suite, as fixed-count loops timed with
/// `ContinuousClock`. Each runs on its own running store.
///
/// Throughput comes from a pass that does nothing but the operations; the percentiles come from a
/// second pass that reads the clock around each operation (except the fan-out, whose rounds are
/// long enough to time in the throughput pass itself).
struct Measurements: Sendable {
    /// Multiplies every operation count: 1 for the full run, less for `--quick`.
    var scale: Double
    /// The measurements to run, by name; empty for all.
    var only: Set<String> = []

    /// The names `--only` accepts, in the order the measurements run.
    static let names = ["put", "get", "lock", "handoff", "fan-out"]

    /// The measurements to run, by name, in order.
    var selected: [(String, () async throws -> Figure)] {
        let all: [(String, () async throws -> Figure)] = [
            ("put", put), ("get", get), ("lock", uncontendedLock), ("handoff", lockHandoff), ("fan-out", watchFanOut),
        ]
        return all.filter { only.isEmpty || only.contains($0.0) }
    }

    private let clock = ContinuousClock()

    private func count(_ full: Int) -> Int { max(1, Int(Double(full) * scale)) }

    func put() async throws -> Figure {
        try await MemoryStore().withRunning { store in
            let keys = Workload.keys("put")
            let value = Workload.value
            // One pass creates the keys; the measured passes overwrite them in turn.
            for key in keys { try await store.put(key, value) }

            let operations = count(1_000_000)
            let cpuStart = CPUTime.now()
            let start = clock.now
            for index in 0..<operations {
                try await store.put(keys[index % keys.count], value)
            }
            let elapsed = clock.now - start
            let cpuTime = CPUTime.now() - cpuStart

            let sampled = count(200_000)
            var latency = LatencySamples(capacity: sampled)
            for index in 0..<sampled {
                let before = clock.now
                try await store.put(keys[index % keys.count], value)
                latency.record(clock.now - before)
            }
            return Figure(
                name: "put (64-byte value, \(Format.grouped(keys.count)) keys)",
                operations: operations,
                elapsed: elapsed,
                cpuTime: cpuTime,
                latency: latency
            )
        }
    }

    func get() async throws -> Figure {
        try await MemoryStore().withRunning { store in
            let keys = Workload.keys("get")
            for key in keys { try await store.put(key, Workload.value) }

            let operations = count(2_000_000)
            let cpuStart = CPUTime.now()
            let start = clock.now
            for index in 0..<operations {
                _ = try await store.get(keys[index % keys.count])
            }
            let elapsed = clock.now - start
            let cpuTime = CPUTime.now() - cpuStart

            let sampled = count(200_000)
            var latency = LatencySamples(capacity: sampled)
            for index in 0..<sampled {
                let before = clock.now
                _ = try await store.get(keys[index % keys.count])
                latency.record(clock.now - before)
            }
            return Figure(
                name: "get (existing keys)",
                operations: operations,
                elapsed: elapsed,
                cpuTime: cpuTime,
                latency: latency,
                target: Target.getsPerSecond
            )
        }
    }

    func uncontendedLock() async throws -> Figure {
        try await MemoryStore().withRunning { store in
            let session = try await store.makeSession(ttl: Workload.sessionTTL)
            let lock = Lock(Workload.key("bench/locks/uncontended"), session: session, store: store)
            for _ in 0..<count(10_000) {
                let grant = try await lock.acquire()
                try await grant.release()
            }

            let operations = count(200_000)
            let cpuStart = CPUTime.now()
            let start = clock.now
            for _ in 0..<operations {
                let grant = try await lock.acquire()
                try await grant.release()
            }
            let elapsed = clock.now - start
            let cpuTime = CPUTime.now() - cpuStart

            let sampled = count(50_000)
            var latency = LatencySamples(capacity: sampled)
            for _ in 0..<sampled {
                let before = clock.now
                let grant = try await lock.acquire()
                try await grant.release()
                latency.record(clock.now - before)
            }
            try await session.close()
            return Figure(
                name: "lock acquire+release uncontended",
                operations: operations,
                elapsed: elapsed,
                cpuTime: cpuTime,
                latency: latency,
                target: Target.uncontendedLocksPerSecond
            )
        }
    }

    func lockHandoff() async throws -> Figure {
        try await MemoryStore().withRunning { store in
            let handoff = try await LockHandoff(
                store: store,
                name: Workload.key("bench/locks/handoff"),
                contenders: Workload.lockContenders
            )
            try await handoff.run(grants: count(3_200))

            let operations = count(32_000)
            let cpuStart = CPUTime.now()
            let start = clock.now
            try await handoff.run(grants: operations)
            let elapsed = clock.now - start
            let cpuTime = CPUTime.now() - cpuStart

            let waits = SampleCollector()
            try await handoff.run(grants: count(16_000), recordWait: waits.record)
            await handoff.close()
            return Figure(
                name: "lock handoff with \(Workload.lockContenders) contenders",
                operations: operations,
                elapsed: elapsed,
                cpuTime: cpuTime,
                latency: waits.collected,
                note: "latency = each contender's wait from acquire() to holding"
            )
        }
    }

    func watchFanOut() async throws -> Figure {
        try await MemoryStore().withRunning { store in
            let fanOut = WatchFanOut(
                store: store, key: Workload.key("bench/watch/fan-out"), watchers: Workload.watchers)
            try await fanOut.start()
            for _ in 0..<count(20) { try await fanOut.putAndAwaitDelivery() }

            let rounds = count(500)
            var latency = LatencySamples(capacity: rounds)
            let cpuStart = CPUTime.now()
            let start = clock.now
            for _ in 0..<rounds {
                let before = clock.now
                try await fanOut.putAndAwaitDelivery()
                latency.record(clock.now - before)
            }
            let elapsed = clock.now - start
            let cpuTime = CPUTime.now() - cpuStart
            await fanOut.stop()
            return Figure(
                name: "watch fan-out to \(Format.grouped(Workload.watchers)) watchers",
                operations: rounds,
                elapsed: elapsed,
                cpuTime: cpuTime,
                latency: latency,
                note:
                    "\(Format.grouped(Double(rounds * Workload.watchers) / (elapsed.nanoseconds / 1e9))) events delivered/s"
            )
        }
    }
}
