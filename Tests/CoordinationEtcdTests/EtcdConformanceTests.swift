import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Testing

@Suite("etcd conformance", .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS (scripts/test starts etcd)"))
struct EtcdConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: EtcdBackend()) == .passed)
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: EtcdBackend())
    }

    @Test("lifecycle", arguments: LifecycleConformance.checks + LifecycleConformance.processChecks)
    func lifecycle(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: EtcdBackend())
    }

    @Test("coordctl", arguments: CoordctlConformance.checks)
    func coordctl(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: EtcdBackend())
    }

    @Test("faults", arguments: FaultConformance.checks)
    func faults(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: EtcdBackend()) == .passed)
    }

    @Test(
        "pause, blocked loop and churn",
        arguments: FaultConformance.pauseChecks + FaultConformance.churnChecks + FaultConformance.blockedLoopChecks)
    func pause(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: EtcdBackend()) == .passed)
    }
}
