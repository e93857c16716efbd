import Coordination
import CoordinationCore
import CoordinationTestKit
import Foundation
import Synchronization
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

    @Test("freezing the member a holder uses (SIGSTOP for two TTLs): no guarded step after another grant")
    func freezeHolderMember() async throws {
        let endpoints = try #require(ZooKeeperTestServer.ensemble)
        let pids = ZooKeeperTestServer.ensemblePIDs
        try #require(endpoints.count == 3 && pids.count == 3)
        let alive = endpoints.indices.filter { kill(pids[$0], 0) == 0 }
        try #require(alive.count >= 2, "at least two members alive")
        let frozen = alive[0]
        let others = alive.dropFirst().map { endpoints[$0] }
        var holderConfiguration = try ZooKeeperTestServer.configuration(
            [endpoints[frozen]] + others, sessionTimeout: .seconds(4))
        holderConfiguration.shuffleEndpoints = false
        let holder = try ZooKeeperStore(configuration: holderConfiguration)
        let waiter = try ZooKeeperStore(
            configuration: ZooKeeperTestServer.configuration(Array(others), sessionTimeout: .seconds(4)))
        let pid = pids[frozen]
        try await withRunning([holder, waiter]) { stores in
            let outcome = try await FrozenMemberDrill.run(
                try Self.uniqueName("frozen"), ttl: .seconds(4), holder: stores[0], waiter: stores[1],
                freeze: { _ = kill(pid, SIGSTOP) }, thaw: { _ = kill(pid, SIGCONT) })
            print("zookeeper frozen member: \(outcome)")
        }
    }

    @Test(
        "killing the member a session uses: the client moves on, the session and its keys and lock survive, watches resume"
    )
    func killConnectedMember() async throws {
        let endpoints = try #require(ZooKeeperTestServer.ensemble)
        let pids = ZooKeeperTestServer.ensemblePIDs
        try #require(endpoints.count == 3 && pids.count == 3)
        let store = try Self.makeStore()
        let observer = try Self.makeStore()
        defer {
            Task {
                await store.close()
                await observer.close()
            }
        }
        let session = try await store.makeSession(ttl: .seconds(8))
        let key = try Self.uniqueName("ephemeral")
        try await store.put(key, "mine", options: .boundTo(session))
        let name = try Self.uniqueName("lock")
        let grant = try await Lock(name, session: session, store: store).acquire()

        let used = try #require(await store.endpoint(of: session))
        let index = try #require(endpoints.firstIndex(of: used))
        // A watcher whose own session is on the same member (listed first, not shuffled).
        var watcherConfiguration = try ZooKeeperTestServer.configuration(
            [used] + endpoints.filter { $0 != used }, sessionTimeout: .seconds(8))
        watcherConfiguration.shuffleEndpoints = false
        let watcher = try ZooKeeperStore(configuration: watcherConfiguration)
        defer { Task { await watcher.close() } }
        let watched = try Self.uniqueName("watched")
        try await observer.put(try watched.appending("before"), "1")
        let stream = try await watcher.watchTree(watched)
        let events = Locked<[WatchEvent]>([])
        let watching = Task {
            for try await event in stream {
                events.withLock { $0.append(event) }
            }
        }
        defer { watching.cancel() }
        try await withDeadline(.seconds(10), "the watcher's snapshot") {
            while events.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(20)) }
        }

        #expect(kill(pids[index], SIGKILL) == 0, "killed member \(used) (pid \(pids[index]))")
        // Written while the watcher's session moves: it must arrive, as a change, not a new snapshot.
        // (If the writer's own connection was on the killed member, its put fails with a typed
        // error — a request in flight has an unknown outcome — and is simply made again.)
        try await withDeadline(.seconds(20), "the write during the move") {
            while true {
                do {
                    return try await observer.put(try watched.appending("during"), "2")
                } catch let error as CoordinationError where error.code == .connectionFailed {
                    continue
                }
            }
        }

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
        #expect(try await observer.line.contenders(in: name).first?.key == grant.key, "the lock is still held")
        #expect(!grant.isLost, "the holder was not told it lost the lock")
        try await observer.put(try watched.appending("after"), "3")
        try await withDeadline(.seconds(20), "the watcher sees both writes") {
            while events.withLock({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(20)) }
        }
        let seen = events.withLock { $0 }
        #expect(
            seen.dropFirst().allSatisfy { if case .put = $0 { true } else { false } },
            "changes, no new snapshot: \(seen)")
        let values = seen.dropFirst().compactMap { event -> String? in
            if case .put(let entry) = event { return entry.stringValue }
            return nil
        }
        #expect(values == ["2", "3"], "the write during the move and the one after, in order")
        try await grant.release()
        try await session.close()
    }

    @Test("a forced session expiry: the holder learns it lost the lock before the next contender is granted")
    func forcedExpiry() async throws {
        let holderStore = try Self.makeStore()
        let waiterStore = try Self.makeStore()
        defer {
            Task {
                await holderStore.close()
                await waiterStore.close()
            }
        }
        let name = try Self.uniqueName("expiry")
        let holderSession = try await holderStore.makeSession(ttl: .seconds(3))
        let grant = try await Lock(name, session: holderSession, store: holderStore).acquire()
        let waiterSession = try await waiterStore.makeSession(ttl: .seconds(20))
        let waiting = Task { () throws -> ContinuousClock.Instant in
            _ = try await Lock(name, session: waiterSession, store: waiterStore).acquire()
            return .now
        }
        try await withDeadline(.seconds(10), "the waiter queues") {
            while try await waiterStore.line.contenders(in: name).count < 2 {
                try await Task.sleep(for: .milliseconds(20))
            }
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
