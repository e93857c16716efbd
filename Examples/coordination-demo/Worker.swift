import Coordination
import Synchronization

/// One member of the demo cluster: campaigns for leadership, registers for discovery, and runs a
/// job guarded by a distributed lock. `crash()` freezes it the way a killed process would: its
/// sessions stop being renewed and nothing is cleaned up.
final class Worker: Sendable {
    let name: String
    let candidate: LeaderCandidate
    let registration: ServiceRegistration
    private let store: any KeyValueStore
    private let jobLock: Key
    private let ttl: Duration
    private let timeline: Timeline
    /// Finished by `crash()`, which ends `run()`.
    private let crashes = AsyncStream.makeStream(of: Void.self)
    private let isCrashed = Atomic<Bool>(false)
    private let jobSession = Mutex<Session?>(nil)
    /// Jobs run per worker, shared by the cluster so the narrator can wait on it.
    private let jobs: JobTally

    init(
        name: String,
        port: Int,
        store: any KeyValueStore,
        root: Key,
        ttl: Duration,
        timeline: Timeline,
        jobs: JobTally
    ) throws {
        self.jobs = jobs
        self.name = name
        self.store = store
        self.ttl = ttl
        self.timeline = timeline
        self.jobLock = try root.appending("locks/nightly-report")
        self.candidate = LeaderCandidate(
            election: try root.appending("election"),
            value: Array(name.utf8),
            store: store,
            sessionTTL: ttl
        )
        self.registration = ServiceRegistration(
            try ServiceInstance(name: "worker", id: name, address: "127.0.0.1", port: port, metadata: ["role": "demo"]),
            base: try root.appending("services"),
            store: store,
            sessionTTL: ttl
        )
    }

    /// Runs until cancelled or crashed.
    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.candidate.run() }
            group.addTask { try await self.registration.run() }
            group.addTask { try await self.reportLeadership() }
            group.addTask { try await self.runJobs() }
            group.addTask { for await _ in self.crashes.stream {} }
            // Ends on cancellation or crash. A crashed worker's recipes see their sessions were
            // abandoned and clean nothing up, as a killed process would not.
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Simulates `kill -9`: sessions are abandoned (the store expires them one TTL later) and the
    /// worker's tasks stop.
    func crash() {
        isCrashed.store(true, ordering: .relaxed)
        candidate.leadership?.session.abandon()
        registration.currentSession?.abandon()
        jobSession.withLock { $0 }?.abandon()
        crashes.continuation.finish()
    }

    private func reportLeadership() async throws {
        for await status in candidate.statuses() {
            if case .leader(let term) = status, !isCrashed.load(ordering: .relaxed) {
                timeline.log(name, "is now the LEADER (term \(term))")
            }
        }
    }

    private func runJobs() async throws {
        let session = try await store.makeSession(ttl: ttl)
        jobSession.withLock { $0 = session }
        let lock = Lock(jobLock, session: session, store: store, value: Array(name.utf8))
        while !Task.isCancelled {
            try await lock.withLock { grant in
                guard !self.isCrashed.load(ordering: .relaxed) else { return }
                self.timeline.log(self.name, "holds lock nightly-report, fencing token \(grant.token)")
                try await Task.sleep(for: .milliseconds(60))
            }
            jobs.record(name)
            try await Task.sleep(for: .milliseconds(150))
        }
        if !session.isAbandoned { try? await session.close() }
    }
}
