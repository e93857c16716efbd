import Coordination
import CoordinationCore
import Foundation
import Logging
import ServiceLifecycle

/// The lifecycle suite: a store, and the recipes that run as services, inside a `ServiceGroup`
/// that shuts down gracefully (SIGTERM in a real service; `triggerGracefulShutdown()` here).
///
/// Each check runs a store of its own from ``ConformanceContext/makeStore`` in the group and
/// looks at the server through `ctx.store`, another client.
public enum LifecycleConformance {
    static let suite = "lifecycle"

    public static let checks: [ConformanceCheck] = [
        storeEndsOnGracefulShutdown, groupShutsDownInOrder,
    ]

    static func check(
        _ name: String,
        _ body: @escaping @Sendable (ConformanceContext) async throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck(suite: suite, name, body: body)
    }

    /// Whether `ctx.store` must see what `store` writes: two clients of one endpoint share their
    /// data (two in-memory stores share nothing, and have different endpoints).
    static func sharesData(_ store: any KeyValueStore, with ctx: ConformanceContext) -> Bool {
        store.storeDescription == ctx.store.storeDescription
    }

    /// Runs `group` in a child task; returns its outcome once `shutdown()` has triggered graceful
    /// shutdown and the group has finished (within a deadline).
    static func runGroup(
        _ group: ServiceGroup,
        until ready: @escaping @Sendable () async throws -> Void
    ) async throws -> Result<Void, any Error> {
        try await withDeadline(.seconds(60), "the service group to start, then shut down gracefully") {
            try await withThrowingTaskGroup(of: Result<Void, any Error>?.self) { tasks in
                tasks.addTask {
                    do {
                        try await group.run()
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                tasks.addTask {
                    try await ready()
                    await group.triggerGracefulShutdown()
                    return nil
                }
                var outcome: Result<Void, any Error>?
                for try await result in tasks {
                    if let result { outcome = result }
                }
                return outcome!
            }
        }
    }

    static let storeEndsOnGracefulShutdown = check(
        "a store in a ServiceGroup closes on graceful shutdown: run() returns and its sessions end"
    ) { ctx in
        let store = try ctx.makeStore()
        let key = try ctx.key("bound")
        let group = ServiceGroup(services: [store], logger: Logger(label: "conformance.lifecycle"))
        let session = Locked<Session?>(nil)
        let outcome = try await runGroup(group) {
            let opened = try await store.makeSession(ttl: ctx.sessionTTL * 10)
            session.withLock { $0 = opened }
            try await store.put(key, "held", options: .boundTo(opened))
            if sharesData(store, with: ctx), try await !ctx.store.exists(key) {
                throw ConformanceFailure("another client of the same server does not see '\(key)'")
            }
        }
        try outcome.get()
        guard let session = session.withLock({ $0 }) else { throw ConformanceFailure("no session was opened") }
        guard session.state == .closed else {
            throw ConformanceFailure("after graceful shutdown the store's session is \(session.state), not closed")
        }
        // The store ended its session on the way out: the key went with it, not a TTL later.
        if sharesData(store, with: ctx), try await ctx.store.exists(key) {
            throw ConformanceFailure("'\(key)' of the store's session is still there after graceful shutdown")
        }
        // And the store refuses work now, plainly.
        do {
            _ = try await store.get(key)
            throw ConformanceFailure("a closed store still answered a get")
        } catch let error as CoordinationError {
            guard error.code == .storeClosed else {
                throw ConformanceFailure("a closed store answered a get with \(error.code), not storeClosed")
            }
        }
    }

    /// A reader of a candidate's statuses, as an application would write it.
    struct StatusReader: Service {
        let candidate: LeaderCandidate
        let seen: Locked<[LeaderCandidate.Status]>

        func run() async throws {
            for await status in candidate.statuses().cancelOnGracefulShutdown() {
                seen.withLock { $0.append(status) }
            }
        }
    }

    static let groupShutsDownInOrder = check(
        "store, registration, candidate and a status reader in one ServiceGroup: graceful shutdown resigns, deregisters, closes, and no service fails"
    ) { ctx in
        let store = try ctx.makeStore()
        let election = try ctx.key("election")
        let services = try ctx.key("services")
        let candidate = LeaderCandidate(
            election: election, value: Array("node-1".utf8), store: store, sessionTTL: ctx.sessionTTL * 10)
        let instance = try ServiceInstance(name: "api", id: "api-1", address: "127.0.0.1", port: 8080)
        let registration = ServiceRegistration(instance, base: services, store: store, sessionTTL: ctx.sessionTTL * 10)
        let readerSaw = Locked<[LeaderCandidate.Status]>([])
        let reader = StatusReader(candidate: candidate, seen: readerSaw)
        // Everything the candidate reports, start to finish (the stream ends after `.stopped`).
        let statusStream = candidate.statuses()
        let recording = Task {
            var all: [LeaderCandidate.Status] = []
            for await status in statusStream { all.append(status) }
            return all
        }
        defer { recording.cancel() }
        // The documented order: the store first (stopped last), its users after it.
        let group = ServiceGroup(
            services: [store, registration, candidate, reader], logger: Logger(label: "conformance.lifecycle"))
        let leaderKey = Locked<Key?>(nil)
        let outcome = try await runGroup(group) {
            try await withDeadline(.seconds(30), "the candidate to lead and the instance to be registered") {
                for await status in candidate.statuses() where status.isLeader { break }
                for await status in registration.statuses() {
                    if case .registered = status { break }
                }
            }
            guard let key = candidate.leadership?.key else { throw ConformanceFailure("leading without a key") }
            if sharesData(store, with: ctx), try await !ctx.store.exists(key) {
                throw ConformanceFailure("another client of the same server does not see the leader's '\(key)'")
            }
            leaderKey.withLock { $0 = key }
        }
        if case .failure(let error) = outcome {
            throw ConformanceFailure("the group failed during graceful shutdown: \(error)")
        }
        guard let leaderKey = leaderKey.withLock({ $0 }) else { throw ConformanceFailure("no leadership key") }
        let statuses = await recording.value
        guard let leading = statuses.lastIndex(where: \.isLeader), statuses[(leading + 1)...] == [.stopping, .stopped]
        else {
            throw ConformanceFailure("after leading, the candidate reported \(statuses), not stopping, then stopped")
        }
        guard readerSaw.withLock({ $0.contains(where: \.isLeader) }) else {
            throw ConformanceFailure("the reader service saw \(readerSaw.withLock { $0 }), never the leadership")
        }
        guard candidate.status == .stopped, registration.status == .stopped else {
            throw ConformanceFailure(
                "candidate \(candidate.status), registration \(registration.status) after shutdown")
        }
        if sharesData(store, with: ctx) {
            if try await ctx.store.exists(leaderKey) {
                throw ConformanceFailure("the leadership key '\(leaderKey)' is still there after graceful shutdown")
            }
            let left = try await ServiceDiscovery(base: services, store: ctx.store).instances(of: "api")
            guard left.isEmpty else { throw ConformanceFailure("still registered after shutdown: \(left)") }
        }
    }
}

extension LifecycleConformance {
    /// Checks that start another process: for backends with a ``ConformanceBackend/peerConnectionString``.
    public static let processChecks: [ConformanceCheck] = [exampleServiceStopsCleanlyOnSIGTERM]

    /// The example service (`Examples/coordination-service`, built by the test target that runs
    /// this) started against the same server, then sent SIGTERM as a service manager would.
    static let exampleServiceStopsCleanlyOnSIGTERM = check(
        "the example service (store, registration, candidate, locked job in one ServiceGroup) exits 0 on SIGTERM and leaves no key"
    ) { ctx in
        guard let url = ctx.peerConnectionString else {
            throw ConformanceFailure("the example-service drill needs the backend's peerConnectionString")
        }
        let root = try ctx.key("service")
        let ttl = ctx.sessionTTL * 10
        let service = try PeerProcess(
            name: "coordination-service",
            executable: try BuiltExecutable.path("coordination-service", override: "COORDINATION_SERVICE"),
            arguments: [
                "--store", url, "--root", root.path, "--id", "api-1", "--ttl-milliseconds", String(ttl.milliseconds),
                "--job-interval-milliseconds", "100", "--metrics-port", "0",
            ])
        defer { service.kill() }
        let election = Election(try root.appending("leader"), store: ctx.store)
        let discovery = ServiceDiscovery(base: try root.appending("services"), store: ctx.store)
        try await service.waitForOutput("leading")
        try await service.waitForOutput("job ran")
        try await withDeadline(.seconds(30), "the example service to be registered and lead") {
            while true {
                let registered = try await !discovery.instances(of: "api").isEmpty
                let led = try await election.leader() != nil
                if registered && led { return }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let leader = try await election.leader()
        guard leader?.stringValue == "api-1" else {
            throw ConformanceFailure("the leader is \(String(describing: leader)), not api-1")
        }
        // Its Prometheus endpoint shows the library's metrics for this backend.
        let announced = service.printed.components(separatedBy: "metrics at http://127.0.0.1:").dropFirst().first
        guard let announced, let port = Int(announced.prefix(while: \.isNumber)) else {
            throw ConformanceFailure("the service did not say where its metrics are: \(service.printed)")
        }
        let backend = ctx.store.storeDescription.backend
        let scraped = try LoopbackHTTP.get(port: port, path: "/metrics")
        for series in [
            "coordination_grants_total{backend=\"\(backend)\",recipe=\"lock\"}",
            "coordination_grants_total{backend=\"\(backend)\",recipe=\"election\"}",
            "coordination_hold_seconds",
        ] where !scraped.contains(series) {
            throw ConformanceFailure("the service's /metrics has no \(series): \(scraped)")
        }
        service.terminate()
        let status = try await service.waitForExit(within: .seconds(30))
        let printed = service.printed
        guard status == 0, printed.contains("stopped cleanly") else {
            throw ConformanceFailure("the example service exited with \(status) on SIGTERM; printed: \(printed)")
        }
        guard !printed.contains("finished unexpectedly") else {
            throw ConformanceFailure("a service of the group finished unexpectedly; printed: \(printed)")
        }
        // Gone at once (resigned, deregistered, sessions ended), not a TTL later.
        if let leader = try await election.leader() {
            throw ConformanceFailure("still a leader after the service stopped: \(leader)")
        }
        let instances = try await discovery.instances(of: "api")
        guard instances.isEmpty else {
            throw ConformanceFailure("still registered after the service stopped: \(instances)")
        }
        let left = try await ctx.store.line.contenders(in: try root.appending("jobs/report"))
        guard left.isEmpty else { throw ConformanceFailure("the job's lock line still has \(left)") }
    }
}
