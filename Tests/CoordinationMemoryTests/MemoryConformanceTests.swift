import Coordination
import CoordinationCore
import CoordinationMemory
import CoordinationTestKit
import Testing

/// The in-memory backend for the conformance suites: every client is the same store.
struct MemoryBackend: ConformanceBackend {
    let name = "memory"
    let sessionTTL: Duration = .milliseconds(300)

    func makeStore() throws -> any KeyValueStore { MemoryStore() }

    func withClients(_ count: Int, _ body: @Sendable ([any KeyValueStore]) async throws -> Void) async throws {
        try await MemoryStore().withRunning { store in
            try await body(Array(repeating: store, count: count))
        }
    }
}

@Suite("MemoryStore conformance")
struct MemoryConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        let outcome = try await check.run(on: MemoryBackend())
        #expect(outcome == .passed)
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        let outcome = try await check.run(on: MemoryBackend())
        #expect(outcome == .passed)
    }

    @Test("lifecycle", arguments: LifecycleConformance.checks)
    func lifecycle(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: MemoryBackend()) == .passed)
    }

    @Test("faults", arguments: FaultConformance.checks)
    func faults(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: MemoryBackend()) == .passed)
    }
}
