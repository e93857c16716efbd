import Coordination
import CoordinationCore
import CoordinationTestKit
import Foundation
import Testing

@testable import CoordinationZooKeeper

/// ZooKeeper `digest` authentication against the real standalone server: the store adds its
/// identity after every handshake, creates its nodes with the `auth` ACL, and clients without the
/// credentials are refused; kazoo with the same digest interoperates both ways.
@Suite(
    "ZooKeeper digest authentication",
    .serialized,
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts ZooKeeper)"))
struct ZooKeeperAuthTests {
    /// Every test's user has a chroot of its own: the store gives every node it creates, parents
    /// included, its ACL, so a root one user made is closed to the others.
    static func chroot(_ username: String) -> String { "/swift-coordination-auth-\(username)" }

    static func store(
        _ credentials: (username: String, password: String)?, chroot: String, worldReadable: Bool = false,
        endpoints: [Endpoint]? = ZooKeeperTestServer.standalone
    ) throws -> ZooKeeperStore {
        var configuration = try ZooKeeperTestServer.configuration(endpoints, chroot: chroot)
        configuration.credentials = credentials
        configuration.worldReadable = worldReadable
        return try ZooKeeperStore(configuration: configuration)
    }

    static func user() -> (username: String, password: String) {
        ("user\(UInt32.random(in: 0 ... .max))", "pw-\(UInt64.random(in: 0 ... .max))")
    }

    @Test(
        "nodes of a store with credentials: its own calls and a lock work; no credentials and a wrong password are permissionDenied"
    )
    func ownerOnly() async throws {
        let alice = Self.user()
        let root = Self.chroot(alice.username)
        let owner = try Self.store(alice, chroot: root)
        let anonymous = try Self.store(nil, chroot: root)
        let impostor = try Self.store((alice.username, "wrong"), chroot: root)
        defer {
            Task {
                await owner.close()
                await anonymous.close()
                await impostor.close()
            }
        }
        let key = try Key("auth/\(alice.username)/value")
        try await owner.put(key, "secret")
        #expect(try await owner.get(key)?.value == Array("secret".utf8))
        let session = try await owner.makeSession(ttl: .seconds(5))
        let grant = try await Lock(try Key("auth/\(alice.username)/lock"), session: session, store: owner).acquire()
        try await grant.release()
        try await session.close()

        _ = try await expectError(.permissionDenied) { try await anonymous.get(key) }
        _ = try await expectError(.permissionDenied) { try await anonymous.put(key, "overwritten") }
        let refused = try await expectError(.permissionDenied) { try await impostor.get(key) }
        #expect(!"\(refused)".contains(alice.password))
        #expect(try await owner.get(key)?.value == Array("secret".utf8))
        try await owner.deleteTree(try Key("auth/\(alice.username)"))
    }

    @Test("worldReadable: others read the nodes but cannot change them")
    func worldReadable() async throws {
        let bob = Self.user()
        let root = Self.chroot(bob.username)
        let owner = try Self.store(bob, chroot: root, worldReadable: true)
        let anonymous = try Self.store(nil, chroot: root)
        defer {
            Task {
                await owner.close()
                await anonymous.close()
            }
        }
        let key = try Key("auth/\(bob.username)/shared")
        try await owner.put(key, "visible")
        #expect(try await anonymous.get(key)?.value == Array("visible".utf8))
        _ = try await expectError(.permissionDenied) { try await anonymous.put(key, "changed") }
        try await owner.deleteTree(try Key("auth/\(bob.username)"))
    }

    @Test("the identity is added again after a reconnect: reads of its nodes work on the resumed session")
    func reauthenticatesAfterReconnect() async throws {
        let carol = Self.user()
        let server = try #require(ZooKeeperTestServer.standalone?.first)
        let proxy = try await CuttingProxy.start(to: server)
        let store = try Self.store(
            carol, chroot: Self.chroot(carol.username), endpoints: [Endpoint(host: "127.0.0.1", port: proxy.port)])
        defer {
            Task {
                try? await proxy.close()
                await store.close()
            }
        }
        let key = try Key("auth/\(carol.username)/value")
        try await store.put(key, "kept")
        proxy.cutAfterNext(opCode: 4)  // getData: the connection breaks after the read is forwarded
        let value = try await withDeadline(.seconds(20), "the read is answered on the resumed session") {
            try await store.get(key)
        }
        #expect(proxy.cuts == 1)
        #expect(value?.value == Array("kept".utf8))
        // A write after the reconnect needs the identity too.
        try await store.put(key, "again")
        try await store.deleteTree(try Key("auth/\(carol.username)"))
    }

    @Test("kazoo with the same digest reads our node, kazoo without is refused; we read kazoo's digest-ACL node")
    func kazooInterop() async throws {
        let dave = Self.user()
        let root = Self.chroot(dave.username)
        let store = try Self.store(dave, chroot: root)
        defer { Task { await store.close() } }
        let key = try Key("auth/\(dave.username)/ours")
        try await store.put(key, "from-swift")
        let path = "\(root)/\(key.path)"
        #expect(
            try await Self.kazoo(auth: "\(dave.username):\(dave.password)", ["get", path]).contains("VALUE from-swift"))
        #expect(try await Self.kazoo(auth: nil, ["get", path]).contains("NOAUTH"))

        let theirs = try Key("auth/\(dave.username)/theirs")
        let created = try await Self.kazoo(
            auth: "\(dave.username):\(dave.password)", ["create", "\(root)/\(theirs.path)", "from-kazoo"])
        #expect(created.contains("CREATED"))
        #expect(try await store.get(theirs)?.value == Array("from-kazoo".utf8))
        let anonymous = try Self.store(nil, chroot: root)
        _ = try await expectError(.permissionDenied) { try await anonymous.get(theirs) }
        await anonymous.close()
        try await store.deleteTree(try Key("auth/\(dave.username)"))
    }

    @Test(
        "an identity the server refuses (AuthFailed: a scheme it has no provider for) ends the session: authenticationFailed"
    )
    func authFailed() async throws {
        let server = try #require(ZooKeeperTestServer.standalone)
        let client = try await ZooKeeperClient.connect(
            endpoints: server, sessionTimeout: .seconds(5),
            security: .init(authentication: [("no-such-scheme", Array("x".utf8))]))
        defer { Task { await client.close() } }
        _ = try await expectError(.authenticationFailed) { try await client.send(.exists(path: "/", watch: false)) }
        _ = try await expectError(.authenticationFailed) { try await client.send(.exists(path: "/", watch: false)) }
    }

    @Test("a ZooKeeper digest user name with ':' is invalidArgument; the connection string takes user:password@")
    func configuration() async throws {
        #expect(throws: CoordinationError.invalidArgument) { try Self.store(("a:b", "pw"), chroot: Self.chroot("x")) }
        var registry = StoreRegistry()
        ZooKeeperStore.register(in: &registry)
        let server = try #require(ZooKeeperTestServer.standalone?.first)
        let erin = Self.user()
        let root = Self.chroot(erin.username)
        let store = try registry.makeStore(
            "zookeeper://\(erin.username):\(erin.password)@\(server.host):\(server.port)\(root)?follower-bound=0s")
        let anonymous = try Self.store(nil, chroot: root)
        defer { Task { await anonymous.close() } }
        try await store.withRunning { store in
            let key = try Key("auth/\(erin.username)/value")
            try await store.put(key, "v")
            _ = try await expectError(.permissionDenied) { try await anonymous.get(key) }
            try await store.deleteTree(try Key("auth/\(erin.username)"))
        }
    }

    /// Runs the kazoo peer and returns what it printed.
    static func kazoo(auth: String?, _ arguments: [String]) async throws -> String {
        let hosts = try #require(ZooKeeperTestServer.standalone).map { "\($0.host):\($0.port)" }.joined(separator: ",")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/peers/kazoo_digest_peer.py").path
        let peer = try PeerProcess(
            name: "kazoo-digest", executable: "/usr/bin/python3",
            arguments: [script, "--hosts", hosts] + (auth.map { ["--auth", $0] } ?? []) + arguments)
        let status = try await peer.waitForExit(within: .seconds(30))
        #expect(status == 0, "kazoo peer: \(peer.printed)")
        return peer.printed
    }
}
