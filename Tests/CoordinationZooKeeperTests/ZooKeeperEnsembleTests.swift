import Coordination
import CoordinationCore
import CoordinationTestKit
import Foundation
import Testing

@testable import CoordinationZooKeeper

#if canImport(Glibc)
    import Glibc
#endif

/// Against the 3-node ensemble `scripts/with-servers` starts (ZOOKEEPER_ENSEMBLE_CONNECT; the
/// members' PIDs, processes that script started, in ZOOKEEPER_ENSEMBLE_PIDS).
@Suite(
    "ZooKeeper ensemble failover",
    .serialized,
    .enabled(
        if: ZooKeeperTestServer.ensembleIsAvailable,
        "needs ZOOKEEPER_ENSEMBLE_CONNECT (scripts/test starts the ensemble)")
)
struct ZooKeeperEnsembleTests {
    static func makeStore() throws -> ZooKeeperStore {
        try ZooKeeperStore(
            configuration: ZooKeeperTestServer.configuration(ZooKeeperTestServer.ensemble, sessionTimeout: .seconds(8)))
    }

    static func uniqueName(_ base: String) throws -> Key {
        try Key("ensemble/\(base)-\(UInt32.random(in: 0 ... .max))")
    }

    /// Waits until `session` is alive again after a move (or fails on expiry).
    static func waitUntilAlive(_ session: Session) async throws {
        try await withDeadline(.seconds(20), "the session is alive again") {
            for await state in session.states() {
                if state == .alive { return }
                if state.isTerminal { throw ConformanceFailure("the session ended: \(state)") }
            }
        }
    }

    @Test("killing the member a session uses: the client moves on, the session and its keys and lock survive")
    func killConnectedMember() async throws {
        let endpoints = try #require(ZooKeeperTestServer.ensemble)
        let pids = ZooKeeperTestServer.ensemblePIDs
        try #require(endpoints.count == 3 && pids.count == 3)
        let store = try Self.makeStore()
        let observer = try Self.makeStore()
        defer { Task { await store.close(); await observer.close() } }
        let session = try await store.makeSession(ttl: .seconds(8))
        let key = try Self.uniqueName("ephemeral")
        try await store.put(key, "mine", options: .boundTo(session))
        let name = try Self.uniqueName("lock")
        let grant = try await Lock(name, session: session, store: store).acquire()

        let used = try #require(await store.endpoint(of: session))
        let index = try #require(endpoints.firstIndex(of: used))
        #expect(kill(pids[index], SIGKILL) == 0, "killed member \(used) (pid \(pids[index]))")

        // The session notices, moves to another member and resumes (same id): suspended, then alive.
        try await withDeadline(.seconds(20), "the session resumes elsewhere") {
            while true {
                if let now = await store.endpoint(of: session), now != used, session.state == .alive {
                    // A request through the session's own connection proves it serves.
                    try await store.put(key, "still mine", options: .boundTo(session))
                    return
                }
                if !session.isActive { throw ConformanceFailure("the session ended: \(session.state)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(session.state == .alive)
        let entry = try await observer.get(key)
        #expect(entry?.session == session.id, "the ephemeral key is still bound to the same session")
        #expect(entry?.stringValue == "still mine")
        #expect(try await observer.contenders(under: name).first?.key == grant.key, "the lock is still held")
        #expect(!grant.isLost, "the holder was not told it lost the lock")
        try await grant.release()
        try await session.close()
    }

    @Test("a forced session expiry: the holder learns it lost the lock before the next contender is granted")
    func forcedExpiry() async throws {
        let holderStore = try Self.makeStore()
        let waiterStore = try Self.makeStore()
        defer { Task { await holderStore.close(); await waiterStore.close() } }
        let name = try Self.uniqueName("expiry")
        let holderSession = try await holderStore.makeSession(ttl: .seconds(3))
        let grant = try await Lock(name, session: holderSession, store: holderStore).acquire()
        let waiterSession = try await waiterStore.makeSession(ttl: .seconds(20))
        let waiting = Task { () throws -> ContinuousClock.Instant in
            _ = try await Lock(name, session: waiterSession, store: waiterStore).acquire()
            return .now
        }
        try await withDeadline(.seconds(10), "the waiter queues") {
            while try await waiterStore.contenders(under: name).count < 2 { try await Task.sleep(for: .milliseconds(20)) }
        }
        let lost = Task { () -> ContinuousClock.Instant in
            _ = await holderSession.waitUntilEnded()
            return .now
        }
        // The holder's process stops talking to the ensemble (as if it hung or was cut off); the
        // servers expire its session one timeout later.
        holderSession.abandon()
        let granted = try await withDeadline(.seconds(20), "the waiter is granted") { try await waiting.value }
        let learned = await lost.value
        #expect(holderSession.state == .expired)
        #expect(learned < granted, "the old holder knew of the loss before the next grant")
        let reason = try await withDeadline(.seconds(5), "lost() returns") { await grant.lost() }
        #expect(reason?.code == .lockLost)
        try await waiterSession.close()
    }
}
