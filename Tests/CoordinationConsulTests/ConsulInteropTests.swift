import Coordination
import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A `Lock` from this library against `consul lock`, which uses Go's `api.Lock` on `PREFIX/.lock`
/// with flags 0x2ddccbc058a50c18: a mixed fleet excludes each other in both orders.
@Suite(
    "consul interop with consul lock",
    .enabled(if: ConsulTestServer.isAvailable, "needs CONSUL_HTTP_ADDR (scripts/test starts a Consul agent)"))
struct ConsulInteropTests {
    func withStore(_ body: @escaping @Sendable (ConsulStore) async throws -> Void) async throws {
        let store = try ConsulTestServer.makeStore()
        try await store.withRunning { store in try await body(store) }
    }

    static func uniqueName(_ what: String) -> String {
        "interop/\(what)-\(UInt32.random(in: 0 ... .max))"
    }

    /// The sessions `consul lock` creates are named after it; one appears when it starts trying.
    static func waitForPeerSession(_ store: ConsulStore, excluding ours: Set<String>) async throws {
        let address = try #require(ConsulTestServer.environment(ConsulTestServer.addressVariable))
        try await withDeadline(.seconds(30), "consul lock opens its session") {
            while true {
                let (data, _) = try await URLSession.shared.data(
                    from: URL(string: "http://\(address)/v1/session/list")!)
                let sessions = (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
                if sessions.contains(where: { !ours.contains($0["ID"] as? String ?? "") }) { return }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    @Test("a .lock key held by nobody is no leader: observers and leader() agree")
    func releasedLockKeyIsNoLeader() async throws {
        let name = Self.uniqueName("released")
        try await withStore { store in
            // What `api.Lock` leaves when its session is invalidated with the default behavior
            // `release` (a `consul lock` process that crashed): the key stays, held by nobody.
            try await store.put(try Key(name + "/.lock"), Array("peer".utf8))
            let lockKey = try #require(try await store.get(try Key(name + "/.lock")))
            #expect(lockKey.session == nil)
            let election = Election(try Key(name), store: store)
            #expect(try await election.leader() == nil)
            var observed = try await election.observe().makeAsyncIterator()
            let first = try await observed.next()
            #expect(first == .some(nil), "observe() reports nobody leading, as leader() does")
            // And a candidate of ours that campaigns now leads in both views.
            let session = try await store.makeSession(ttl: .seconds(10))
            let leading = try await election.campaign(value: Array("ours".utf8), session: session)
            #expect(try await election.leader()?.key == leading.key)
            var next: LeaderInfo?
            while let leader = try await observed.next() {
                next = leader
                if leader != nil { break }
            }
            #expect(next?.key == leading.key, "observe() reports our leader")
            try await leading.resign()
            try await session.close()
        }
    }

    @Test("our Lock first: consul lock waits until we release")
    func ourLockExcludesConsulLock() async throws {
        let name = Self.uniqueName("lock-a")
        try await withStore { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let grant = try await Lock(try Key(name), session: session, store: store).acquire()
            let lockKey = try #require(try await store.get(try Key(name + "/.lock")))
            #expect(lockKey.session == session.id, "we hold api.Lock's key with our session")
            let peer = try ConsulLockPeer.start(prefix: name, shellCommand: "echo peer-ran-while-holding")
            try await Self.waitForPeerSession(store, excluding: [session.id.rawValue])
            // Give the peer ample time to (wrongly) take the lock; it must keep waiting.
            try await Task.sleep(for: .seconds(1))
            #expect(!peer.printed.contains("peer-ran-while-holding"), "consul lock ran while we held the lock")
            #expect(peer.isRunning)
            try await grant.release()
            try await peer.waitForOutput("peer-ran-while-holding")
            #expect(try await peer.waitForExit() == 0)
            try await session.close()
        }
    }

    @Test("consul lock first: our Lock waits until consul lock releases")
    func consulLockExcludesOurs() async throws {
        let name = Self.uniqueName("lock-b")
        let release = FileManager.default.temporaryDirectory.appendingPathComponent("release-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: release) }
        try await withStore { store in
            // The child holds the lock until the test creates the release file.
            let peer = try ConsulLockPeer.start(
                prefix: name,
                shellCommand: "echo peer-holding; while [ ! -e '\(release.path)' ]; do sleep 0.05; done; echo peer-done"
            )
            try await peer.waitForOutput("peer-holding")
            let holder = try #require(
                try await Lock(try Key(name), session: store.makeSession(ttl: .seconds(10)), store: store).holder())
            #expect(holder.key.path == name + "/.lock", "consul lock's key heads the line")
            let session = try await store.makeSession(ttl: .seconds(10))
            let waiter = Task { try await Lock(try Key(name), session: session, store: store).acquire() }
            try await withDeadline(.seconds(20), "our contender queues behind consul lock") {
                while try await store.line.contenders(in: try Key(name)).count < 2 {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let line = try await store.line.contenders(in: try Key(name))
            #expect(line.first?.key == holder.key, "consul lock still holds while we wait")
            #expect(line.last?.session == session.id)
            FileManager.default.createFile(atPath: release.path, contents: nil)
            let grant = try await withDeadline(.seconds(30), "our lock after consul lock released") {
                try await waiter.value
            }
            #expect(grant.token > holder.token, "fencing token grows past consul lock's grant")
            #expect(try await store.get(try Key(name + "/.lock"))?.session == session.id, "we now hold api.Lock's key")
            #expect(try await peer.waitForExit() == 0)
            try await grant.release()
            try await session.close()
        }
    }
}
