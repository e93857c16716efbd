import Coordination
import CoordinationCore
import CoordinationTestKit
import CoordinationZooKeeper
import Foundation
import Testing

/// A kazoo `Lock` (Debian's python3-kazoo, run with /usr/bin/python3 by scripts/peers/kazoo_lock_peer.py)
/// and this library's `Lock` on the same znode: they exclude each other in both orders. kazoo is
/// told `extra_lock_patterns=["-lock-"]`, so it reads Curator's names, which this library uses;
/// this library reads kazoo's `<uuid>__lock__<sequence>` names as contenders too.
@Suite(
    "ZooKeeper interop with kazoo",
    .serialized,
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts ZooKeeper)")
)
struct ZooKeeperInteropTests {
    static let chroot = "/swift-coordination-interop"

    static func peer(path: String) throws -> PeerProcess {
        let hosts = try #require(ZooKeeperTestServer.standalone).map { "\($0.host):\($0.port)" }.joined(separator: ",")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/peers/kazoo_lock_peer.py").path
        return try PeerProcess(
            name: "kazoo", executable: "/usr/bin/python3",
            arguments: [script, "--hosts", hosts, "--path", path, "--timeout", "30"])
    }

    static func names() throws -> (key: Key, path: String) {
        let key = try Key("interop/lock-\(UInt32.random(in: 0 ... .max))")
        return (key, "\(chroot)/\(key.path)")
    }

    @Test("kazoo holds first: this library's Lock waits until kazoo releases")
    func kazooFirst() async throws {
        let (key, path) = try Self.names()
        let store = try ZooKeeperTestServer.makeStore(chroot: Self.chroot)
        defer { Task { await store.close() } }
        let peer = try Self.peer(path: path)
        try await peer.waitForOutput("HOLDING")
        let session = try await store.makeSession(ttl: .seconds(10))
        let acquired = Locked(false)
        let waiter = Task {
            let grant = try await Lock(key, session: session, store: store).acquire()
            acquired.withLock { $0 = true }
            return grant
        }
        // Our contender queues behind kazoo's node and stays there while kazoo holds.
        try await withDeadline(.seconds(10), "our contender queues behind kazoo's") {
            while try await store.line.contenders(in: key).count < 2 { try await Task.sleep(for: .milliseconds(20)) }
        }
        let line = try await store.line.contenders(in: key)
        #expect(line.first?.key.name.contains("__lock__") == true, "kazoo's node heads the line: \(line.map(\.key))")
        try await Task.sleep(for: .milliseconds(300))
        #expect(!acquired.withLock { $0 }, "granted while kazoo held the lock")
        peer.send(line: "release")
        try await peer.waitForOutput("RELEASED")
        let grant = try await withDeadline(.seconds(10), "granted after kazoo released") { try await waiter.value }
        #expect(try await peer.waitForExit() == 0)
        try await grant.release()
        try await session.close()
    }

    @Test("this library holds first: kazoo's Lock waits until it is released")
    func swiftFirst() async throws {
        let (key, path) = try Self.names()
        let store = try ZooKeeperTestServer.makeStore(chroot: Self.chroot)
        defer { Task { await store.close() } }
        let session = try await store.makeSession(ttl: .seconds(10))
        let grant = try await Lock(key, session: session, store: store).acquire()
        #expect(grant.key.name.hasPrefix("_c_") && grant.key.name.contains("-lock-"), "Curator's name: \(grant.key)")
        let peer = try Self.peer(path: path)
        try await peer.waitForOutput("WAITING")
        try await Task.sleep(for: .milliseconds(300))
        #expect(!peer.printed.contains("HOLDING"), "kazoo took a held lock: \(peer.printed)")
        try await grant.release()
        try await peer.waitForOutput("HOLDING")
        peer.send(line: "release")
        #expect(try await peer.waitForExit() == 0)
        try await session.close()
    }
}
