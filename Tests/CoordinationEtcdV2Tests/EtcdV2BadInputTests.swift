import CoordinationCore
import CoordinationEtcdV2
import CoordinationTestKit
import Logging
import Testing

/// Bad input and dead endpoints give typed errors within a deadline, never a crash or a hang.
struct EtcdV2BadInputTests {
    @Test("an unreachable server: every call's error names the cause (connection refused, unknown host)")
    func unreachableCause() async throws {
        var quiet = Logger(label: "etcdv2-unreachable")
        quiet.logLevel = .critical
        var endpoint = UnreachableServer.refusingEndpoint
        try await UnreachableServer.expectCause(
            "connection refused",
            from: try EtcdV2Store(configuration: .init(endpoint: endpoint, requestTimeout: .seconds(1), logger: quiet)))
        endpoint = UnreachableServer.unknownHostEndpoint
        try await UnreachableServer.expectCause(
            "unknown host 'no-such-host.invalid'",
            from: try EtcdV2Store(configuration: .init(endpoint: endpoint, requestTimeout: .seconds(1), logger: quiet)))
    }

    @Test("an unreachable endpoint fails with connectionFailed, within the request deadline")
    func unreachableEndpoint() async throws {
        // Port 1 on loopback: nothing listens there.
        let store = try EtcdV2Store(
            configuration: .init(endpoint: Endpoint(host: "127.0.0.1", port: 1), requestTimeout: .seconds(2)))
        try await store.withRunning { store in
            let error = try await withDeadline(.seconds(20), "the call fails") {
                await #expect(throws: CoordinationError.self) { _ = try await store.get("some/key") }
            }
            #expect(error?.code == .connectionFailed || error?.code == .timeout)
            #expect(error?.backend == "etcdv2")
            #expect(error?.endpoint == "127.0.0.1:1")
            let session = await #expect(throws: CoordinationError.self) {
                _ = try await store.makeSession(ttl: .seconds(5))
            }
            #expect(session?.code == .connectionFailed || session?.code == .timeout)
            let watch = try await withDeadline(.seconds(20), "the watch fails") {
                await #expect(throws: CoordinationError.self) { _ = try await store.watchTree("some/prefix") }
            }
            #expect(watch?.code == .connectionFailed || watch?.code == .timeout)
        }
    }

    @Test("connection strings: etcdv2://host:port[/namespace][?timeout=]; bad ones are typed errors")
    func connectionStrings() async throws {
        var registry = StoreRegistry()
        EtcdV2Store.register(in: &registry)
        #expect(registry.schemes == ["etcdv2"])
        let store = try registry.makeStore("etcdv2://127.0.0.1:2379/apps/one?timeout=3s")
        #expect(store.storeDescription.backend == "etcdv2")
        #expect(store.storeDescription.endpoint == "127.0.0.1:2379")
        #expect(!store.capabilities.contains(.valuesOnInnerNodes))
        #expect(store.capabilities.contains(.distinguishesExpiry))
        await store.close()
        _ = try registry.makeStore("etcdv2://127.0.0.1:2379?timeout=500ms")
        for bad in [
            "etcdv2://a:1,b:2", "etcdv2://127.0.0.1:2379?timeout=soon", "etcdv2://user:secret@127.0.0.1:2379?tls=maybe",
            "etcdv2://127.0.0.1:2379?timeout=0", "etcdv2://127.0.0.1:2379?cert=/c.pem",
        ] {
            let error = #expect(throws: CoordinationError.self) { _ = try registry.makeStore(bad) }
            #expect(error?.code == .invalidConnectionString, "\(bad)")
            #expect(!(error?.message.contains("secret") ?? false), "no credential in the message")
        }
    }

    @Test(
        "calls after close fail with storeClosed; invalid keys, oversized values and TTLs are refused before I/O",
        .enabled(if: EtcdV2TestServer.isAvailable, "needs ETCD_V2_ENDPOINT"))
    func refusedBeforeIO() async throws {
        let store = try EtcdV2TestServer.makeStore()
        try await store.withRunning { store in
            await #expect(throws: CoordinationError.invalidKey) { _ = try await store.get("a b") }
            await #expect(throws: CoordinationError.valueTooLarge) {
                try await store.put("tests/v2big", [UInt8](repeating: 1, count: store.limits.maxValueSize + 1))
            }
            await #expect(throws: CoordinationError.invalidArgument) { _ = try await store.makeSession(ttl: .zero) }
            // etcd v2 hides '_' nodes from listings and watches: such keys are refused up front.
            let hidden = await #expect(throws: CoordinationError.self) { try await store.put("tests/_hidden", "x") }
            #expect(hidden?.code == .invalidKey)
            // A binary value at the size limit is accepted and reads back intact.
            let big = (0..<store.limits.maxValueSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            try await store.put("tests/v2big", big)
            #expect(try await store.get("tests/v2big")?.value == big)
            try await store.delete("tests/v2big")
            // Sub-second TTLs round up to whole seconds.
            let session = try await store.makeSession(ttl: .milliseconds(1500))
            #expect(session.ttl == .seconds(2))
            try await session.close()
        }
        await #expect(throws: CoordinationError.storeClosed) { _ = try await store.get("tests/after-close") }
        await #expect(throws: CoordinationError.storeClosed) { _ = try await store.watch("tests/after-close") }
    }
}
