import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Testing

/// Serialized: Consul's blocking queries report the state when they return, so writes by other
/// checks running in parallel (which move the KV index and wake every query on a missing key or a
/// subtree) widen the window in which two quick writes of one check would arrive as one change.
@Suite(
    "consul conformance",
    .serialized,
    .enabled(if: ConsulTestServer.isAvailable, "needs CONSUL_HTTP_ADDR (scripts/test starts a Consul agent)"))
struct ConsulConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ConsulBackend())
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ConsulBackend())
    }

    @Test("lifecycle", arguments: LifecycleConformance.checks + LifecycleConformance.processChecks)
    func lifecycle(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ConsulBackend())
    }

    @Test("coordctl", arguments: CoordctlConformance.checks)
    func coordctl(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ConsulBackend())
    }

    @Test("faults", arguments: FaultConformance.checks)
    func faults(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ConsulBackend()) == .passed)
    }

    @Test("pause and churn", arguments: FaultConformance.pauseChecks + FaultConformance.churnChecks)
    func pause(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ConsulBackend()) == .passed)
    }
}
