import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Logging
import Testing

/// Failures that need no server, or a wrong one: typed errors, no hang, nothing leaked.
@Suite("consul bad input")
struct ConsulBadInputTests {
    @Test("an unreachable agent gives a typed error naming it, within the deadline")
    func unreachableAgent() async throws {
        var logger = Logger(label: "consul-unreachable")
        logger.logLevel = .critical
        // Port 1 on loopback: nothing listens there.
        let store = try ConsulStore(
            configuration: .init(host: "127.0.0.1", port: 1, requestTimeout: .milliseconds(500), logger: logger))
        try await store.withRunning { store in
            let calls: [@Sendable () async throws -> Void] = [
                { _ = try await store.get(try Key("k")) },
                { _ = try await store.makeSession(ttl: .seconds(10)) },
                { _ = try await store.watch(try Key("k")) },
            ]
            for call in calls {
                let error = try await withDeadline(.seconds(10), "the call fails") {
                    () async throws -> CoordinationError? in
                    do {
                        try await call()
                        return nil
                    } catch let error as CoordinationError {
                        return error
                    }
                }
                let failure = try #require(error)
                #expect([.timeout, .connectionFailed].contains(failure.code), "\(failure)")
                #expect(failure.backend == "consul")
                #expect(failure.endpoint == "127.0.0.1:1")
            }
        }
    }

    @Test("a connection string names the agent, datacenter, namespace and options; the token never prints")
    func connectionString() throws {
        var registry = StoreRegistry()
        ConsulStore.register(in: &registry)
        let store = try registry.makeStore("consul://127.0.0.1:8501/app?dc=dc1&token=s3cret&lock-delay=0s&ttl-min=1s")
        #expect(store.storeDescription.backend == "consul")
        #expect(store.storeDescription.endpoint == "127.0.0.1:8501")
        #expect(store.limits.minimumSessionTTL == .seconds(1))
        #expect(store.limits.maxValueSize == 512 * 1024)
        #expect(!"\(store.storeDescription)".contains("s3cret"))
        #expect(!"\(try ConnectionString("consul://127.0.0.1:8501?token=s3cret"))".contains("s3cret"))
        #expect(try registry.makeStore("consul://localhost").storeDescription.endpoint == "localhost:8500")
        #expect(throws: CoordinationError.self) { try registry.makeStore("consul://h1:1,h2:2") }
        #expect(throws: CoordinationError.self) { try registry.makeStore("consul://127.0.0.1:8500?timeout=soon") }
        #expect(throws: CoordinationError.self) { try registry.makeStore("consul://127.0.0.1:8500/bad//ns") }
    }

    @Test("calls after close fail with storeClosed")
    func afterClose() async throws {
        let store = try ConsulStore(configuration: .init(host: "127.0.0.1", port: 1))
        await store.close()
        await #expect(throws: CoordinationError.storeClosed) { try await store.get(try Key("k")) }
        await #expect(throws: CoordinationError.storeClosed) { try await store.watch(try Key("k")) }
        await #expect(throws: CoordinationError.storeClosed) { try await store.makeSession(ttl: .seconds(10)) }
    }

    @Test("TTLs below the agent's minimum and revoking a non-session id are invalidArgument, before any I/O")
    func badArguments() async throws {
        let store = try ConsulStore(configuration: .init(host: "127.0.0.1", port: 1))
        await #expect(throws: CoordinationError.invalidArgument) { try await store.makeSession(ttl: .seconds(9)) }
        await #expect(throws: CoordinationError.invalidArgument) { try await store.makeSession(ttl: .seconds(86_401)) }
        await #expect(throws: CoordinationError.invalidArgument) { try await store.revokeSession(SessionID("../../kv")) }
        await #expect(throws: CoordinationError.valueTooLarge) {
            try await store.put(try Key("big"), [UInt8](repeating: 1, count: 512 * 1024 + 1))
        }
        await store.close()
    }
}

/// With a real agent: a wrong datacenter is a typed error, not a hang.
@Suite(
    "consul bad input against the agent",
    .enabled(if: ConsulTestServer.isAvailable, "needs CONSUL_HTTP_ADDR (scripts/test starts a Consul agent)"))
struct ConsulAgentBadInputTests {
    @Test("an unknown datacenter is a typed error")
    func unknownDatacenter() async throws {
        var configuration = try ConsulTestServer.configuration()
        configuration.datacenter = "nowhere"
        let store = try ConsulStore(configuration: configuration)
        try await store.withRunning { store in
            let error = try await expectError(.serverError) { try await store.get(try Key("k")) }
            #expect(error.message.contains("datacenter"), "\(error)")
        }
    }

    @Test("a namespace keeps the store's keys apart")
    func namespace() async throws {
        let namespace = "ns-\(UInt32.random(in: 0 ... .max))"
        let inside = try ConsulTestServer.makeStore(namespace: namespace)
        let outside = try ConsulTestServer.makeStore()
        try await inside.withRunning { inside in
            try await outside.withRunning { outside in
                try await inside.put(try Key("a/b"), Array("v".utf8))
                #expect(try await outside.get(try Key("\(namespace)/a/b"))?.value == Array("v".utf8))
                #expect(try await inside.list(try Key("a")).map(\.key.path) == ["a/b"])
                try await outside.deleteTree(try Key(namespace))
                #expect(try await inside.get(try Key("a/b")) == nil)
            }
        }
    }
}
