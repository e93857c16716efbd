import Coordination
import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Synchronization
import Testing

/// Consul's lock-delay: after a session is invalidated, the keys it held cannot be acquired by
/// another session for the lock-delay. A registration that lost its session must wait that out on
/// one new session, with backoff — not open and destroy a session every retry.
@Suite(
    "consul lock-delay",
    .enabled(if: ConsulTestServer.isAvailable, "needs CONSUL_HTTP_ADDR (scripts/test starts a Consul agent)"))
struct ConsulLockDelayTests {
    @Test("a registration whose session was lost is back within a TTL plus the lock-delay, on one new session")
    func registrationWaitsOutTheLockDelay() async throws {
        var configuration = try ConsulTestServer.configuration()
        let lockDelay = Duration.seconds(3)
        configuration.lockDelay = lockDelay
        let ttl = Duration.seconds(2)
        let store = try ConsulStore(configuration: configuration)
        try await store.withRunning { store in
            let base = try Key("lock-delay/\(UInt32.random(in: 0 ... .max))")
            let registration = ServiceRegistration(
                try ServiceInstance(name: "api", id: "api-1", address: "127.0.0.1", port: 8080),
                base: base, store: store, sessionTTL: ttl)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await registration.run() }
                defer { group.cancelAll() }
                try await waitUntilRegistered(registration)
                let lost = try #require(registration.currentSession)
                let sessions = Locked<Set<SessionID>>([])
                lost.abandon()  // the process pauses: renewals stop, Consul invalidates the session
                let started = ContinuousClock.now
                // Consul invalidates between one and two TTLs; then the lock-delay; then one retry.
                try await withDeadline(ttl * 2 + lockDelay + .seconds(5), "registered again") {
                    var sawLoss = false
                    while true {
                        if let current = registration.currentSession, current != lost {
                            sessions.withLock { _ = $0.insert(current.id) }
                        }
                        let status = registration.status
                        if status == .reregistering { sawLoss = true }
                        if sawLoss, case .registered = status { return }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
                let took = ContinuousClock.now - started
                let opened = sessions.withLock { $0 }
                #expect(opened.count == 1, "sessions opened while waiting out the lock-delay: \(opened.count)")
                #expect(took >= lockDelay, "back after \(took), before the lock-delay of \(lockDelay) ran out?")
            }
        }
    }
}
