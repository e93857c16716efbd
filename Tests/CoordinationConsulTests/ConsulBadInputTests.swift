import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Foundation
import Logging
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Failures that need no server, or a wrong one: typed errors, no hang, nothing leaked.
@Suite("consul bad input")
struct ConsulBadInputTests {
    @Test("an unreachable server: every call's error names the cause (connection refused, unknown host)")
    func unreachableCause() async throws {
        var quiet = Logger(label: "consul-unreachable")
        quiet.logLevel = .critical
        var endpoint = UnreachableServer.refusingEndpoint
        try await UnreachableServer.expectCause(
            "connection refused",
            from: try ConsulStore(configuration: .init(endpoint: endpoint, requestTimeout: .seconds(1), logger: quiet)))
        endpoint = UnreachableServer.unknownHostEndpoint
        try await UnreachableServer.expectCause(
            "unknown host 'no-such-host.invalid'",
            from: try ConsulStore(configuration: .init(endpoint: endpoint, requestTimeout: .seconds(1), logger: quiet)))
    }

    @Test("an unreachable agent gives a typed error naming it, within the deadline")
    func unreachableAgent() async throws {
        var logger = Logger(label: "consul-unreachable")
        logger.logLevel = .critical
        // Port 1 on loopback: nothing listens there.
        let store = try ConsulStore(
            configuration: .init(
                endpoint: Endpoint(host: "127.0.0.1", port: 1), requestTimeout: .milliseconds(500), logger: logger))
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
        let store = try ConsulStore(configuration: .init(endpoint: Endpoint(host: "127.0.0.1", port: 1)))
        await store.close()
        await #expect(throws: CoordinationError.storeClosed) { try await store.get(try Key("k")) }
        await #expect(throws: CoordinationError.storeClosed) { try await store.watch(try Key("k")) }
        await #expect(throws: CoordinationError.storeClosed) { try await store.makeSession(ttl: .seconds(10)) }
    }

    @Test("TTLs below the agent's minimum and revoking a non-session id are invalidArgument, before any I/O")
    func badArguments() async throws {
        let store = try ConsulStore(configuration: .init(endpoint: Endpoint(host: "127.0.0.1", port: 1)))
        await #expect(throws: CoordinationError.invalidArgument) { try await store.makeSession(ttl: .seconds(9)) }
        await #expect(throws: CoordinationError.invalidArgument) { try await store.makeSession(ttl: .seconds(86_401)) }
        await #expect(throws: CoordinationError.invalidArgument) {
            try await store.revokeSession(SessionID("../../kv"))
        }
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

/// Against real ACLs (the test agent enables them with an anonymous-allow default and a throwaway
/// management token): a wrong token and a too weak token give typed errors that never show the token.
@Suite(
    "consul ACL tokens",
    .enabled(
        if: ConsulTestServer.isAvailable && ConsulTestServer.environment("CONSUL_TEST_MANAGEMENT_TOKEN") != nil,
        "needs CONSUL_HTTP_ADDR and CONSUL_TEST_MANAGEMENT_TOKEN (scripts/test starts a Consul agent with ACLs)"))
struct ConsulACLTests {
    @Test("an unknown token is authenticationFailed; it is never printed")
    func unknownToken() async throws {
        var configuration = try ConsulTestServer.configuration()
        configuration.token = "00000000-dead-beef-0000-000000000000"
        let store = try ConsulStore(configuration: configuration)
        try await store.withRunning { store in
            let error = try await expectError(.authenticationFailed) { try await store.get(try Key("acl/k")) }
            #expect(!"\(error)".contains("dead-beef"))
            try await expectError(.authenticationFailed) { try await store.makeSession(ttl: .seconds(10)) }
        }
    }

    @Test("a read-only token reads, and writing with it is permissionDenied")
    func readOnlyToken() async throws {
        let management = try #require(ConsulTestServer.environment("CONSUL_TEST_MANAGEMENT_TOKEN"))
        let address = try #require(ConsulTestServer.environment(ConsulTestServer.addressVariable))
        func put(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
            var request = URLRequest(url: URL(string: "http://\(address)\(path)")!)
            request.httpMethod = "PUT"
            request.setValue(management, forHTTPHeaderField: "X-Consul-Token")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            let (data, _) = try await URLSession.shared.data(for: request)
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        let policy = try await put(
            "/v1/acl/policy",
            ["Name": "read-only-\(UInt32.random(in: 0 ... .max))", "Rules": #"key_prefix "" { policy = "read" }"#])
        let policyID = try #require(policy["ID"] as? String)
        let token = try await put("/v1/acl/token", ["Policies": [["ID": policyID]]])
        let secret = try #require(token["SecretID"] as? String)

        var configuration = try ConsulTestServer.configuration()
        configuration.token = secret
        let store = try ConsulStore(configuration: configuration)
        try await store.withRunning { store in
            #expect(try await store.get(try Key("acl/readable")) == nil)
            let error = try await expectError(.permissionDenied) {
                try await store.put(try Key("acl/k"), Array("v".utf8))
            }
            #expect(!"\(error)".contains(secret))
            try await expectError(.permissionDenied) { try await store.deleteTree(try Key("acl")) }
        }
    }
}
