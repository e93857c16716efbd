import Coordination
import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Registration in Consul's own catalog: what `consul catalog services`, the health API and DNS see.
@Suite(
    "consul native service registration",
    .enabled(if: ConsulTestServer.isAvailable, "needs CONSUL_HTTP_ADDR (scripts/test starts a Consul agent)"))
struct ConsulNativeServiceTests {
    static func uniqueName(_ what: String) -> String { "\(what)-\(UInt32.random(in: 0 ... .max))" }

    /// Reads `/v1/health/service/NAME` directly, as any Consul tool would.
    static func health(_ name: String, passingOnly: Bool) async throws -> [[String: Any]] {
        let address = try #require(ConsulTestServer.environment(ConsulTestServer.addressVariable))
        let url = URL(string: "http://\(address)/v1/health/service/\(name)\(passingOnly ? "?passing" : "")")!
        let (data, _) = try await URLSession.shared.data(from: url)
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

    static func serviceIDs(_ entries: [[String: Any]]) -> [String] {
        entries.compactMap { ($0["Service"] as? [String: Any])?["ID"] as? String }.sorted()
    }

    @Test("a registration shows up in /v1/health/service as passing, and leaves the passing list when heartbeats stop")
    func heartbeatsKeepItPassing() async throws {
        let name = Self.uniqueName("api")
        let store = try ConsulTestServer.makeStore()
        try await store.withRunning { store in
            let record = NativeServiceRecord(
                name: name, id: "\(name)-1", address: "10.0.0.7", port: 8080, metadata: ["zone": "a"])
            try await store.registerService(record, ttl: .seconds(1))
            let passing = try await Self.health(name, passingOnly: true)
            #expect(Self.serviceIDs(passing) == [record.id])
            let service = try #require(passing.first?["Service"] as? [String: Any])
            #expect(service["Address"] as? String == "10.0.0.7")
            #expect(service["Port"] as? Int == 8080)
            #expect((service["Meta"] as? [String: String])?["zone"] == "a")
            #expect(try await store.healthyServices(named: name) == [record])

            // Heartbeats stop: the TTL check goes critical and the instance leaves the passing list
            // (it stays in the catalog until DeregisterCriticalServiceAfter).
            let membership = try await store.watchHealthyServices(named: name)
            let emptied = try await withDeadline(.seconds(20), "the instance leaves the passing list") {
                () async throws -> Bool in
                for try await records in membership where records.isEmpty { return true }
                return false
            }
            #expect(emptied)
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: true)).isEmpty)
            #expect(
                Self.serviceIDs(try await Self.health(name, passingOnly: false)) == [record.id],
                "still in the catalog, critical")

            // A heartbeat brings it back; deregistration removes it from the catalog.
            try await store.passServiceCheck(id: record.id)
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: true)) == [record.id])
            try await store.deregisterService(id: record.id)
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: false)).isEmpty)
            await #expect(throws: CoordinationError.keyNotFound) { try await store.passServiceCheck(id: record.id) }
            try await store.deregisterService(id: record.id)  // unknown: not an error
        }
    }

    @Test("ServiceRegistration and ServiceDiscovery use Consul's catalog when asked")
    func recipesUseTheNativeCatalog() async throws {
        let name = Self.uniqueName("web")
        let store = try ConsulTestServer.makeStore()
        try await store.withRunning { store in
            let base = try Key("services")
            let discovery = ServiceDiscovery(base: base, store: store, catalog: .nativeWhenAvailable)
            let events = try await discovery.watch(name)
            let instance = try ServiceInstance(
                name: name, id: "\(name)-1", address: "127.0.0.1", port: 9000, metadata: ["v": "1"])
            // Follows the membership until the instance is gone again.
            let watcher = Task { () async throws -> [DiscoveryEvent] in
                var seen: [DiscoveryEvent] = []
                for try await event in events {
                    seen.append(event)
                    if case .deregistered = event.change { break }
                }
                return seen
            }

            let registration = ServiceRegistration(
                instance, base: base, store: store, sessionTTL: .seconds(2), catalog: .nativeWhenAvailable)
            let running = Task { try await registration.run() }
            try await withDeadline(.seconds(20), "Consul's health API lists the instance") {
                while Self.serviceIDs(try await Self.health(name, passingOnly: true)) != [instance.id] {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            // Nothing is written to the KV layout in this mode.
            #expect(try await store.list(base.appending(try Key(name))).isEmpty)
            #expect(try await discovery.instances(of: name) == [instance])

            // Heartbeats keep it passing well past its TTL.
            try await Task.sleep(for: .seconds(3))
            #expect(try await discovery.instances(of: name) == [instance])
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: true)) == [instance.id])

            running.cancel()
            _ = try? await running.value
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: false)).isEmpty, "deregistered on stop")
            let seen = try await withDeadline(.seconds(20), "discovery sees the deregistration") {
                try await watcher.value
            }
            #expect(
                seen.map(\.change) == [.snapshot, .registered(instance), .deregistered(id: instance.id)],
                "\(seen)")
            #expect(seen.first?.instances == [])
            #expect(seen.dropFirst().first?.instances == [instance])
            #expect(seen.last?.instances == [])
        }
    }

    @Test("a registration the agent forgot is registered again by the next heartbeat")
    func reregistersWhenForgotten() async throws {
        let name = Self.uniqueName("worker")
        let store = try ConsulTestServer.makeStore()
        try await store.withRunning { store in
            let instance = try ServiceInstance(name: name, id: "\(name)-1", address: "127.0.0.1", port: 9100)
            let registration = ServiceRegistration(
                instance, base: try Key("services"), store: store, sessionTTL: .seconds(2),
                retryDelay: .milliseconds(100), catalog: .nativeWhenAvailable)
            let statuses = registration.statuses()
            let running = Task { try await registration.run() }
            try await withDeadline(.seconds(20), "registered") {
                for await status in statuses { if case .registered = status { return } }
            }
            // As if the agent lost it (restarted without its state): the next heartbeat finds no check.
            try await store.deregisterService(id: instance.id)
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: false)).isEmpty)
            let sequence = try await withDeadline(.seconds(20), "re-registered") {
                () async -> [ServiceRegistration.Status] in
                var seen: [ServiceRegistration.Status] = []
                for await status in registration.statuses() {
                    seen.append(status)
                    if status == .reregistering { continue }
                    if seen.contains(.reregistering), case .registered = status { return seen }
                }
                return seen
            }
            #expect(sequence.contains(.reregistering), "\(sequence)")
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: true)) == [instance.id])
            running.cancel()
            _ = try? await running.value
            #expect(Self.serviceIDs(try await Self.health(name, passingOnly: false)).isEmpty)
        }
    }

    @Test("service names and ids are validated before any I/O")
    func badNames() async throws {
        let store = try ConsulTestServer.makeStore()
        try await store.withRunning { store in
            await #expect(throws: CoordinationError.invalidKey) {
                try await store.registerService(.init(name: "a/b", id: "x", address: "", port: 1), ttl: .seconds(5))
            }
            await #expect(throws: CoordinationError.invalidKey) { try await store.passServiceCheck(id: "../x") }
            await #expect(throws: CoordinationError.invalidKey) { try await store.healthyServices(named: "a b") }
        }
    }
}
