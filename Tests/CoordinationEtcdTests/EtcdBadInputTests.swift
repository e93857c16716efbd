import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Logging
import Testing

/// Failures that need no server, or a wrong one: typed errors, no hang, nothing leaked.
@Suite("etcd bad input")
struct EtcdBadInputTests {
    @Test("an unreachable server: every call's error names the cause (connection refused, unknown host)")
    func unreachableCause() async throws {
        var quiet = Logger(label: "etcd-unreachable")
        quiet.logLevel = .critical
        var endpoint = UnreachableServer.refusingEndpoint
        try await UnreachableServer.expectCause(
            "connection refused",
            from: try EtcdStore(configuration: .init(endpoints: [endpoint], requestTimeout: .seconds(1), logger: quiet))
        )
        endpoint = UnreachableServer.unknownHostEndpoint
        try await UnreachableServer.expectCause(
            "unknown host 'no-such-host.invalid'",
            from: try EtcdStore(configuration: .init(endpoints: [endpoint], requestTimeout: .seconds(1), logger: quiet))
        )
    }

    @Test("an unreachable endpoint gives a typed error naming it, within the deadline")
    func unreachableEndpoint() async throws {
        var logger = Logger(label: "etcd-unreachable")
        logger.logLevel = .critical
        // Port 1 on loopback: nothing listens there.
        let store = try EtcdStore(
            configuration: .init(
                endpoints: [Endpoint(host: "127.0.0.1", port: 1)], requestTimeout: .milliseconds(500), logger: logger))
        try await store.withRunning { store in
            let error = try await withDeadline(.seconds(10), "the call fails") {
                () async throws -> CoordinationError? in
                let key = try Key("k")
                do {
                    _ = try await store.get(key)
                    return nil
                } catch let error as CoordinationError {
                    return error
                }
            }
            let failure = try #require(error)
            #expect([.timeout, .connectionFailed].contains(failure.code))
            #expect(failure.backend == "etcd")
            #expect(failure.endpoint == "127.0.0.1:1")
        }
    }

    @Test("a connection string names endpoints, namespace and credentials; the password never prints")
    func connectionString() throws {
        var registry = StoreRegistry()
        EtcdStore.register(in: &registry)
        let store = try registry.makeStore("etcd://user:s3cret@127.0.0.1:2379,127.0.0.1:22379/app?timeout=2s")
        #expect(store.storeDescription.backend == "etcd")
        #expect(store.storeDescription.endpoint == "127.0.0.1:2379,127.0.0.1:22379")
        #expect(!"\(store.storeDescription)".contains("s3cret"))
        // Host names are fine with several endpoints (each is resolved when the store connects to it).
        #expect(try registry.makeStore("etcd://h1:1,localhost:2").storeDescription.endpoint == "h1:1,localhost:2")
        #expect(throws: CoordinationError.self) { try registry.makeStore("etcd://127.0.0.1:0") }
        #expect(throws: CoordinationError.self) { try registry.makeStore("etcd://127.0.0.1:2379?timeout=soon") }
        #expect(throws: CoordinationError.self) { try registry.makeStore("etcd://127.0.0.1:2379?timeout=0s") }
        // Durations read the same on every backend.
        _ = try registry.makeStore("etcd://127.0.0.1:2379?timeout=500ms")
        _ = try registry.makeStore("etcd://127.0.0.1:2379?timeout=1m")
    }

    @Test("calls after close fail with storeClosed")
    func afterClose() async throws {
        let store = try EtcdStore(configuration: .init(endpoints: [Endpoint(host: "127.0.0.1", port: 1)]))
        await store.close()
        await #expect(throws: CoordinationError.storeClosed) { try await store.get(try Key("k")) }
        await #expect(throws: CoordinationError.storeClosed) { try await store.watch(try Key("k")) }
    }
}
