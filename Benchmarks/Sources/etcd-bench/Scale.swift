import BenchSupport
import Coordination
import CoordinationCore
import CoordinationEtcd
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 15's scale figures: one process, one `EtcdStore`, against one member.
///
/// - `scale` (the figure with the issue's targets): `scaleSessions` sessions (etcd leases), a key
///   bound to each (its registration) and a watch of each key, all held by the store.
/// - `scale_registrations` (no target; what the recipe adds on top): as many `ServiceRegistration`s,
///   each with a session, a key and a watch of its own plus the tasks that keep it registered.
///
/// Each prints how long the ramp took; at steady state (everything up, only keep-alives flowing,
/// for `scaleSteady`) the client's CPU (getrusage) as a share of one core, its resident memory,
/// and the keep-alives etcd received per second; the LeaseKeepAlive and Watch streams etcd saw
/// opened for all of it (its `grpc_server_started_total`); and the time to detect one expiry: one
/// more session, with a key bound to it and watched, is abandoned (no more keep-alives, as a
/// crashed owner), and the time is taken until the client reports it expired (its own deadline:
/// last acknowledged keep-alive + TTL) and until etcd's deletion of the key reaches the store's
/// shared watch stream.
func scale(_ options: Options) async throws -> [String] {
    try await measureScale("scale", options) { store, base, wave, progress in
        var held: [(Session, WatchStream)] = []
        held.reserveCapacity(options.scaleSessions)
        while held.count < options.scaleSessions {
            let count = min(wave, options.scaleSessions - held.count)
            let first = held.count
            let up = try await withThrowingTaskGroup(of: (Session, WatchStream).self) { group in
                for index in first..<(first + count) {
                    group.addTask {
                        let session = try await store.makeSession(ttl: options.scaleTTL)
                        let key = try base.appending("svc").appending("i\(index)")
                        try await store.put(
                            key, Array("127.0.0.1:\(1024 + index % 60_000)".utf8), options: .boundTo(session))
                        return (session, try await store.watch(key))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            held += up
            progress("\(held.count) up")
        }
        return { held.filter { !$0.0.isActive }.count }
    }
}

func scaleRegistrations(_ options: Options) async throws -> [String] {
    try await measureScale("scale_registrations", options) { store, base, wave, progress in
        var logger = Logger(label: "etcd-bench-scale")
        logger.logLevel = .warning
        let registrations = try (0..<options.scaleSessions).map { index in
            ServiceRegistration(
                try ServiceInstance(name: "svc", id: "i\(index)", address: "127.0.0.1", port: 1024 + index % 60_000),
                base: base, store: store, sessionTTL: options.scaleTTL, logger: logger)
        }
        let runners = Task {
            try await withThrowingDiscardingTaskGroup { group in
                for registration in registrations { group.addTask { try await registration.run() } }
            }
        }
        // Waits in waves only for the progress line; they all start at once here, as a fleet
        // restarted together would.
        var up = 0
        while up < registrations.count {
            let next = min(up + wave, registrations.count)
            for registration in registrations[up..<next] { await waitRegistered(registration) }
            up = next
            progress("\(up) registered")
        }
        return {
            let lost = registrations.filter { !($0.currentSession?.isActive ?? false) }.count
            runners.cancel()
            try? await runners.value  // every registration deregistered before the store closes
            return lost
        }
    }
}

/// Sets up the load with `setUp` (which returns how to count the sessions lost, and lets go of
/// the load when called), then measures it.
private func measureScale(
    _ name: String,
    _ options: Options,
    setUp: (EtcdStore, Key, Int, (String) -> Void) async throws -> () async -> Int
) async throws -> [String] {
    let metrics = ServerMetrics(host: options.endpoint.host, port: options.endpoint.port)
    let serverBefore = try metrics.streamCounts()
    let store = try makeStore(options)
    func progress(_ text: String) {
        let line = Array(
            "etcd-bench \(name): \(text), resident \(fixed(ResidentMemory.read().residentMB, 1)) MB\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
    return try await store.withRunning { store in
        let base = try Key("\(options.prefix)/\(name)-\(UInt32.random(in: 0 ... .max))")
        let clock = ContinuousClock()
        let rampStart = clock.now
        let cpuAtStart = ProcessCPU.used()
        let release = try await setUp(store, base, options.scaleWave, progress)
        let ramp = rampStart.duration(to: clock.now)
        let rampCPU = ProcessCPU.used() - cpuAtStart

        // Steady state: everything up, only keep-alives flowing.
        try await Task.sleep(for: .seconds(2))
        let steadyBefore = try metrics.streamCounts()
        let cpuBefore = ProcessCPU.used()
        let steadyStart = clock.now
        try await Task.sleep(for: options.scaleSteady)
        let steadyWall = steadyStart.duration(to: clock.now)
        let steadyCPU = ProcessCPU.used() - cpuBefore
        let steadyAfter = try metrics.streamCounts()
        let memory = ResidentMemory.read()
        let keepAlives =
            steadyAfter.received["LeaseKeepAlive", default: 0] - steadyBefore.received["LeaseKeepAlive", default: 0]
        progress("steady state measured; now one expiry")

        // One expiry under that load.
        let session = try await store.makeSession(ttl: options.scaleTTL)
        let key = try base.appending("expiry-probe")
        try await store.put(key, Array("probe".utf8), options: .boundTo(session))
        let events = try await store.watch(key)
        let abandoned = clock.now
        session.abandon()
        async let clientSaw: Duration = {
            _ = await session.waitUntilEnded()
            return abandoned.duration(to: clock.now)
        }()
        async let watchSaw: Duration? = {
            for try await event in events {
                if case .deleted = event { return abandoned.duration(to: clock.now) }
            }
            return nil
        }()
        let (client, watch) = try await (clientSaw, watchSaw)
        let streams = try metrics.streamCounts()
        let lost = await release()
        progress("done; closing the store")

        func opened(_ method: String) -> Int {
            Int(streams.started[method, default: 0] - serverBefore.started[method, default: 0])
        }
        return [
            "swift \(name) sessions=\(options.scaleSessions) registrations=\(options.scaleSessions) watches=\(options.scaleSessions + 1)"
                + " ttl_s=\(fixed(options.scaleTTL.seconds, 0)) ramp_s=\(fixed(ramp.seconds, 1))"
                + " ramp_cpu_s=\(fixed(rampCPU.seconds, 1)) lost_sessions=\(lost)",
            "swift \(name)_steady seconds=\(fixed(steadyWall.seconds, 1)) cpu_percent_of_core=\(fixed(100 * steadyCPU.seconds / steadyWall.seconds, 1))"
                + " rss_mb=\(fixed(memory.residentMB, 1)) peak_rss_mb=\(fixed(memory.peakMB, 1))"
                + " keepalives_per_s=\(fixed(keepAlives / steadyWall.seconds, 1))",
            "swift \(name)_streams lease_keepalive_streams=\(opened("LeaseKeepAlive")) watch_streams=\(opened("Watch"))",
            "swift \(name)_expiry client_expired_after_s=\(fixed(client.seconds, 2))"
                + " watch_delete_after_s=\(watch.map { fixed($0.seconds, 2) } ?? "never")"
                + " watch_after_client_ms=\(watch.map { fixed(($0 - client).seconds * 1000, 0) } ?? "-")",
        ]
    }
}

private func waitRegistered(_ registration: ServiceRegistration) async {
    for await status in registration.statuses() {
        if case .registered = status { return }
        if status == .stopped { return }
    }
}

/// This process's resident memory now and at its peak, from /proc/self/status (Linux).
struct ResidentMemory {
    var residentMB = 0.0
    var peakMB = 0.0

    static func read() -> ResidentMemory {
        var memory = ResidentMemory()
        guard let file = fopen("/proc/self/status", "r") else { return memory }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let kilobytes =
                Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
            if line.hasPrefix("VmRSS:") { memory.residentMB = kilobytes / 1024 }
            if line.hasPrefix("VmHWM:") { memory.peakMB = kilobytes / 1024 }
        }
        return memory
    }
}
