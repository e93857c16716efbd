import CoordinationCore
import CoordinationTestKit
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import CoordinationZooKeeper

/// Bad input gets a typed error before or instead of any harm; nothing hangs without a deadline.
@Suite("ZooKeeper bad input")
struct ZooKeeperBadInputTests {
    @Test("an unreachable server: every call's error names the cause (connection refused, unknown host)")
    func unreachableCause() async throws {
        var quiet = Logger(label: "zookeeper-unreachable")
        quiet.logLevel = .critical
        var endpoint = UnreachableServer.refusingEndpoint
        try await UnreachableServer.expectCause(
            "connection refused",
            from: try ZooKeeperStore(
                configuration: .init(endpoints: [endpoint], connectTimeout: .seconds(1), logger: quiet)))
        endpoint = UnreachableServer.unknownHostEndpoint
        try await UnreachableServer.expectCause(
            "unknown host 'no-such-host.invalid'",
            from: try ZooKeeperStore(
                configuration: .init(endpoints: [endpoint], connectTimeout: .seconds(1), logger: quiet)))
    }

    @Test("connection strings: endpoints, ports, chroot and options are checked")
    func connectionStrings() throws {
        var registry = StoreRegistry()
        ZooKeeperStore.register(in: &registry)
        let store = try registry.makeStore("zookeeper://127.0.0.1:2181,127.0.0.2:2182/apps/one?timeout=4s")
        #expect(store.storeDescription.endpoint == "127.0.0.1:2181,127.0.0.2:2182/apps/one")
        #expect(try registry.makeStore("zookeeper://localhost").storeDescription.endpoint == "localhost:2181")
        for bad in [
            "zookeeper://127.0.0.1:2181/a b", "zookeeper://127.0.0.1:2181?timeout=soon",
            "zookeeper://127.0.0.1:2181?follower-bound=-1s", "zookeeper://127.0.0.1:2181?follower-bound=lots",
        ] {
            let error = #expect(throws: CoordinationError.self, "\(bad)") { try registry.makeStore(bad) }
            #expect(error?.code == .invalidConnectionString, "\(bad)")
        }
        #expect(throws: CoordinationError.self) { try registry.makeStore("zookeeper://127.0.0.1:99999") }
    }

    @Test("contender names: sequences compared as numbers, kazoo's and Curator's names both read")
    func contenderNames() {
        #expect(ZooKeeperPaths.sequence(of: "_c_0f1e-lock-0000000010") == 10)
        #expect(ZooKeeperPaths.sequence(of: "3fa9c0__lock__0000000002") == 2)
        #expect(ZooKeeperPaths.sequence(of: "member0") == nil)
        #expect(ZooKeeperPaths.sequence(of: "0000000001") == nil, "a sequence needs a name before it")
        #expect(ZooKeeperPaths.sequence(of: "x-lock-000000001") == nil, "ZooKeeper appends at least 10 digits")
        #expect(ZooKeeperPaths.sequence(of: "xlock0000000001") == nil, "digits follow '-' or '_'")
        #expect(ZooKeeperPaths.sequence(of: "x-lock-99999999999999999999") == nil, "beyond Int64")
        #expect(ZooKeeperPaths.sequence(of: "x-lock-2147483648") == 2_147_483_648)
        #expect(ZooKeeperPaths.sequence(of: "ü-lock-0000000003") == 3)
        #expect(ZooKeeperPaths.sequence(of: "_c_0f1e-lock-0000000010"[...].dropLast(2)) == nil)
        let line = ZooKeeperStore.ordered(["b-lock-0000000010", "a-lock-0000000009", "c__lock__0000000100"])
        #expect(line.map(\.name) == ["a-lock-0000000009", "b-lock-0000000010", "c__lock__0000000100"])
        #expect(
            ZooKeeperStore.ordered(["a-lock-0000000001", "member", "b-lock-0000000002"]).map(\.name)
                == ["a-lock-0000000001", "b-lock-0000000002"],
            "a child without a sequence number (a parent znode, a stray key) is no contender")
        #expect(ZooKeeperPaths.sessionID(0x0100_0177_a41b_007f).rawValue == "01000177a41b007f")
        #expect(ZooKeeperPaths.owner(.min) == nil, "a container has no owner")
        #expect(ZooKeeperPaths.owner(0) == nil)
        let uuid = ZooKeeperStore.uuid()
        #expect(uuid.count == 36 && uuid.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])
    }

    @Test("a TTL leaving less than the minimum after the follower bound is refused before any I/O, naming the option")
    func followerBound() async throws {
        var registry = StoreRegistry()
        ZooKeeperStore.register(in: &registry)
        // Port 1: nothing answers there, so getting past the check would fail differently.
        let byDefault = try registry.makeStore("zookeeper://127.0.0.1:1")
        let error = try await expectError(.invalidArgument) { _ = try await byDefault.makeSession(ttl: .seconds(12)) }
        #expect(error.message.contains("follower-bound="), "\(error)")
        await byDefault.close()
        let configured = try registry.makeStore("zookeeper://127.0.0.1:1?follower-bound=2s&connect-timeout=1s")
        try await expectError(.invalidArgument) { _ = try await configured.makeSession(ttl: .seconds(2)) }
        // Past the check: the unreachable endpoint is what fails now.
        try await expectError(.connectionFailed) { _ = try await configured.makeSession(ttl: .seconds(3)) }
        await configured.close()
    }

    @Test("with the root as chroot, keys under zookeeper/ are refused before any I/O")
    func reservedSubtree() async throws {
        let store = try ZooKeeperStore(configuration: .init(endpoints: [.init(host: "127.0.0.1", port: 1)]))
        try await expectError(.invalidKey) { try await store.get("zookeeper/quota") }
        try await expectError(.invalidKey) { try await store.put("zookeeper", "x") }
        try await expectError(.invalidKey) { try await store.list("zookeeper") }
        try await expectError(.invalidKey) { try await store.watchTree("zookeeper") }
        try await expectError(.invalidKey) { try await store.line.contenders(in: try Key("zookeeper/locks")) }
        await store.close()
    }

    @Test("an unreachable ensemble: a typed error naming the endpoints, within the connect timeout")
    func unreachable() async throws {
        // A port nothing listens on (bound, then closed).
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        let store = try ZooKeeperStore(
            configuration: .init(endpoints: [.init(host: "127.0.0.1", port: port)], connectTimeout: .seconds(1)))
        let error = try await expectError(.connectionFailed) { try await store.get("anything") }
        #expect(error.message.contains("127.0.0.1:\(port)"), "\(error)")
        await store.close()
    }

    @Test("a server that accepts but never answers: the handshake times out with a typed error")
    func silentServer() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        let store = try ZooKeeperStore(
            configuration: .init(endpoints: [.init(host: "127.0.0.1", port: port)], connectTimeout: .seconds(1)))
        try await withDeadline(.seconds(10), "the call fails") {
            try await expectError(.connectionFailed) { try await store.exists("anything") }
        }
        await store.close()
        try await server.close()
    }

    @Test(
        "against the real server: closed store, bad session ids, keys below an ephemeral key",
        .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT")
    )
    func realServer() async throws {
        let store = try ZooKeeperTestServer.makeStore()
        try await expectError(.invalidArgument) { try await store.revokeSession(SessionID("../../kv")) }
        let session = try await store.makeSession(ttl: .seconds(5))
        let parent = try Key("bad-input/\(UInt32.random(in: 0 ... .max))")
        try await store.put(parent, "ephemeral", options: .boundTo(session))
        let error = try await expectError(.invalidArgument) {
            try await store.put(try parent.appending("child"), "x")
        }
        #expect(error.key == parent.path + "/child")
        #expect(try await store.get(parent)?.session == session.id, "the ephemeral key is unharmed")
        try await expectError(.invalidArgument) {
            try await store.makeSession(ttl: .milliseconds(10))
        }
        try await session.close()
        await store.close()
        try await expectError(.storeClosed) { try await store.get(parent) }
        try await expectError(.storeClosed) { try await store.makeSession(ttl: .seconds(5)) }
    }
}
