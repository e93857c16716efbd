import Coordination
import CoordinationConsul
import CoordinationCore
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Lock figures on a real Consul agent (`CONSUL_HTTP_ADDR`):
///
/// - uncontended: one client, one session, `acquire()` + `release()` in a loop — latency p50/p99
///   of the whole cycle and of the acquire alone, cycles per second;
/// - contended: 16 clients (a store and a session each) loop acquire/release on one lock for a
///   fixed time — grants per second and hand-off latency (one holder's release to the next grant).
@main
struct ConsulBench {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        let quick = arguments.contains("--quick")
        guard let address = getenv("CONSUL_HTTP_ADDR").map({ String(cString: $0) }),
            let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...])
        else {
            print("consul-bench: CONSUL_HTTP_ADDR is not set (run through Benchmarks/consul/run)")
            exit(2)
        }
        var logger = Logger(label: "consul-bench")
        logger.logLevel = .warning
        let configuration = ConsulStore.Configuration(
            endpoint: Endpoint(host: String(address[..<colon]), port: port), lockDelay: .zero,
            minimumSessionTTL: .seconds(1),
            logger: logger)
        let prefix = "bench/run-\(UInt32.random(in: 0 ... .max))"
        let cycles = quick ? 300 : 2000
        let contenders = 16
        let window: Duration = quick ? .seconds(3) : .seconds(10)

        print(try await uncontended(configuration, prefix: prefix, warmup: cycles / 10, cycles: cycles))
        print(
            try await contended(
                configuration, prefix: prefix, contenders: contenders, warmup: .seconds(2), window: window))
    }

    static func uncontended(
        _ configuration: ConsulStore.Configuration, prefix: String, warmup: Int, cycles: Int
    ) async throws -> String {
        let store = try ConsulStore(configuration: configuration)
        return try await store.withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let lock = Lock(try Key("\(prefix)/uncontended"), session: session, store: store)
            for _ in 0..<warmup { try await lock.acquire().release() }
            var whole: [Duration] = []
            var acquire: [Duration] = []
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<cycles {
                let began = clock.now
                let grant = try await lock.acquire()
                acquire.append(began.duration(to: clock.now))
                try await grant.release()
                whole.append(began.duration(to: clock.now))
            }
            let elapsed = start.duration(to: clock.now)
            try await session.close()
            return "consul uncontended acquire+release: ops_per_s=\(format(Double(cycles) / elapsed.seconds, 1))"
                + " p50_ms=\(format(percentile(whole, 0.5))) p99_ms=\(format(percentile(whole, 0.99)))"
                + " acquire_p50_ms=\(format(percentile(acquire, 0.5))) acquire_p99_ms=\(format(percentile(acquire, 0.99)))"
                + " cycles=\(cycles)"
        }
    }

    static func contended(
        _ configuration: ConsulStore.Configuration, prefix: String, contenders: Int, warmup: Duration, window: Duration
    ) async throws -> String {
        let name = try Key("\(prefix)/contended")
        let recorder = HandoffRecorder()
        let stores = try (0..<contenders).map { _ in try ConsulStore(configuration: configuration) }
        return try await withThrowingTaskGroup(of: Void.self) { services in
            for store in stores { services.addTask { try await store.run() } }
            defer { services.cancelAll() }
            var sessions: [Session] = []
            for store in stores { sessions.append(try await store.makeSession(ttl: .seconds(10))) }
            let result: (handoffs: [Duration], grants: Int, elapsed: Duration) = try await withThrowingTaskGroup(
                of: Void.self
            ) { group in
                for (store, session) in zip(stores, sessions) {
                    let lock = Lock(name, session: session, store: store)
                    group.addTask {
                        while true {
                            let grant = try await lock.acquire()
                            recorder.granted()
                            // Hold across a yield so that every contender really queues.
                            await Task.yield()
                            let done = recorder.stopping.load(ordering: .relaxed)
                            recorder.releasing()
                            try await grant.release()
                            if done { return }
                        }
                    }
                }
                try await Task.sleep(for: warmup)
                recorder.start()
                try await Task.sleep(for: window)
                let measured = recorder.stop()
                recorder.stopping.store(true, ordering: .relaxed)
                try await group.waitForAll()
                return measured
            }
            for session in sessions { try? await session.close() }
            for store in stores { await store.close() }
            return
                "consul contended contenders=\(contenders): grants_per_s=\(format(Double(result.grants) / result.elapsed.seconds, 1))"
                + " handoff_p50_ms=\(format(percentile(result.handoffs, 0.5)))"
                + " handoff_p99_ms=\(format(percentile(result.handoffs, 0.99))) grants=\(result.grants)"
                + " seconds=\(format(result.elapsed.seconds, 1))"
        }
    }
}

/// Hand-off latency: from one holder's release to the next grant, within the measuring window.
final class HandoffRecorder: Sendable {
    private struct State {
        var measuring = false
        var start: ContinuousClock.Instant?
        var lastRelease: ContinuousClock.Instant?
        var handoffs: [Duration] = []
        var grants = 0
    }

    private let state = Mutex(State())
    let stopping = Atomic<Bool>(false)

    func start() {
        state.withLock { state in
            state.measuring = true
            state.start = .now
        }
    }

    func granted() {
        let now = ContinuousClock.now
        state.withLock { state in
            guard state.measuring else { return }
            state.grants += 1
            if let release = state.lastRelease { state.handoffs.append(release.duration(to: now)) }
        }
    }

    func releasing() {
        state.withLock { $0.lastRelease = .now }
    }

    func stop() -> (handoffs: [Duration], grants: Int, elapsed: Duration) {
        state.withLock { state in
            state.measuring = false
            return (state.handoffs, state.grants, (state.start ?? .now).duration(to: .now))
        }
    }
}

func percentile(_ samples: [Duration], _ fraction: Double) -> Double {
    guard !samples.isEmpty else { return .nan }
    let sorted = samples.sorted()
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)].milliseconds
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
    }

    var seconds: Double { milliseconds / 1e3 }
}

func format(_ value: Double, _ decimals: Int = 3) -> String {
    guard value.isFinite else { return "nan" }
    var text = String(Int((value * pow(10, Double(decimals))).rounded()))
    while text.count <= decimals { text = "0" + text }
    return decimals == 0 ? text : String(text.dropLast(decimals)) + "." + String(text.suffix(decimals))
}
