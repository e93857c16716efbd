import BenchSupport
import Coordination
import CoordinationCore
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 15's scale figure: one process (one `EtcdStore`) holding `scaleSessions` service
/// registrations against one member. Each `ServiceRegistration` has a session (an etcd lease) of
/// its own, a key bound to it, and a watch of that key (so it can register again if the key is
/// removed): 10,000 sessions, 10,000 registrations and 10,000 watches by default.
///
/// Printed: how long they took to come up; at steady state (after they are all registered, for
/// `scaleSteady`) the client's CPU (getrusage) as a share of one core, its resident memory, and
/// the keep-alives etcd received per second; the number of LeaseKeepAlive and Watch streams etcd
/// saw opened for all of it (its `grpc_server_started_total`); and the time to detect one expiry —
/// one session is abandoned (no more keep-alives, as a crashed owner), and the time is taken until
/// the client reports the session expired (its own deadline: last acknowledged keep-alive + TTL)
/// and until the member's deletion of the key reaches the store's shared watch stream.
func scale(_ options: Options) async throws -> [String] {
    let metrics = ServerMetrics(host: options.endpoint.host, port: options.endpoint.port)
    let serverBefore = try metrics.streamCounts()
    let store = try makeStore(options)
    var logger = Logger(label: "etcd-bench-scale")
    logger.logLevel = .warning
    return try await store.withRunning { store in
        let base = try Key("\(options.prefix)/scale-\(UInt32.random(in: 0 ... .max))")
        let registrations = (0..<options.scaleSessions).map { index in
            ServiceRegistration(
                ServiceInstance(name: "svc", id: "i\(index)", address: "127.0.0.1", port: 1024 + index % 60_000),
                base: base, store: store, sessionTTL: options.scaleTTL, logger: logger)
        }
        let clock = ContinuousClock()
        let rampStart = clock.now
        let cpuAtStart = ProcessCPU.used()
        return try await withThrowingDiscardingTaskGroup { group in
            // Up in waves, each registered before the next starts (as instances of a fleet would
            // come up over time rather than in one instant).
            var started = 0
            while started < registrations.count {
                let wave = registrations[started..<min(started + options.scaleWave, registrations.count)]
                for registration in wave { group.addTask { try await registration.run() } }
                for registration in wave { await waitRegistered(registration) }
                started += wave.count
            }
            let ramp = rampStart.duration(to: clock.now)
            let rampCPU = ProcessCPU.used() - cpuAtStart

            // Steady state: everything registered, only keep-alives flowing.
            try await Task.sleep(for: .seconds(2))
            let steadyBefore = try metrics.streamCounts()
            let cpuBefore = ProcessCPU.used()
            let steadyStart = clock.now
            try await Task.sleep(for: options.scaleSteady)
            let steadyWall = steadyStart.duration(to: clock.now)
            let steadyCPU = ProcessCPU.used() - cpuBefore
            let steadyAfter = try metrics.streamCounts()
            let memory = ResidentMemory.read()
            let keepAlives = steadyAfter.received["LeaseKeepAlive", default: 0] - steadyBefore.received["LeaseKeepAlive", default: 0]
            let lost = registrations.filter { !($0.currentSession?.isActive ?? false) }.count

            // One expiry: the first registration's session stops renewing.
            let victim = registrations[0]
            let session = try await requireSession(victim)
            let key = try base.appending("svc").appending("i0")
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
            group.cancelAll()

            func opened(_ method: String) -> Int {
                Int(streams.started[method, default: 0] - serverBefore.started[method, default: 0])
            }
            return [
                "swift scale sessions=\(registrations.count) registrations=\(registrations.count) watches=\(registrations.count + 1)"
                    + " ttl_s=\(fixed(options.scaleTTL.seconds, 0)) ramp_s=\(fixed(ramp.seconds, 1))"
                    + " ramp_cpu_s=\(fixed(rampCPU.seconds, 1)) lost_sessions=\(lost)",
                "swift scale_steady seconds=\(fixed(steadyWall.seconds, 1)) cpu_percent_of_core=\(fixed(100 * steadyCPU.seconds / steadyWall.seconds, 1))"
                    + " rss_mb=\(fixed(memory.residentMB, 1)) peak_rss_mb=\(fixed(memory.peakMB, 1))"
                    + " keepalives_per_s=\(fixed(keepAlives / steadyWall.seconds, 1))",
                "swift scale_streams lease_keepalive_streams=\(opened("LeaseKeepAlive")) watch_streams=\(opened("Watch"))",
                "swift scale_expiry client_expired_after_s=\(fixed(client.seconds, 2))"
                    + " watch_delete_after_s=\(watch.map { fixed($0.seconds, 2) } ?? "never")"
                    + " watch_after_client_ms=\(watch.map { fixed(($0 - client).seconds * 1000, 0) } ?? "-")",
            ]
        }
    }
}

private func waitRegistered(_ registration: ServiceRegistration) async {
    for await status in registration.statuses() {
        if case .registered = status { return }
        if status == .stopped { return }
    }
}

private func requireSession(_ registration: ServiceRegistration) async throws -> Session {
    guard let session = registration.currentSession, session.isActive else {
        throw Arguments.Invalid("the first registration has no live session")
    }
    return session
}

/// This process's resident memory now and at its peak, from /proc/self/status (Linux).
struct ResidentMemory {
    var residentMB = 0.0
    var peakMB = 0.0

    static func read() -> ResidentMemory {
        var memory = ResidentMemory()
        guard let file = fopen("/proc/self/status", "r") else { return memory }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            let kilobytes = Double(text.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
            if text.hasPrefix("VmRSS:") { memory.residentMB = kilobytes / 1024 }
            if text.hasPrefix("VmHWM:") { memory.peakMB = kilobytes / 1024 }
        }
        return memory
    }
}
