import CoordinationCore
import CoordinationTestKit
import CoordinationZooKeeper
import Testing

@Suite(
    "zookeeper conformance",
    .serialized,
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts a ZooKeeper server)"))
struct ZooKeeperConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ZooKeeperBackend())
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ZooKeeperBackend())
    }

    @Test("lifecycle", arguments: LifecycleConformance.checks + LifecycleConformance.processChecks)
    func lifecycle(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ZooKeeperBackend())
    }

    @Test("coordctl", arguments: CoordctlConformance.checks)
    func coordctl(_ check: ConformanceCheck) async throws {
        try await check.runReportingOptOut(on: ZooKeeperBackend())
    }

    @Test("faults", arguments: FaultConformance.checks)
    func faults(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ZooKeeperBackend()) == .passed)
    }

    @Test(
        "pause, blocked loop and churn",
        arguments: FaultConformance.pauseChecks + FaultConformance.churnChecks + FaultConformance.blockedLoopChecks)
    func pause(_ check: ConformanceCheck) async throws {
        #expect(try await check.run(on: ZooKeeperBackend()) == .passed)
    }
}
