import CoordinationCore
import CoordinationEtcdV2
import CoordinationTestKit
import Testing

@Suite(
    "etcd v2 conformance",
    // One check at a time: the checks run 2-second sessions, and on a loaded two-core machine a
    // few dozen checks at once can starve a refresh long enough to expire one (correctly).
    .serialized,
    .enabled(if: EtcdV2TestServer.isAvailable, "needs ETCD_V2_ENDPOINT (scripts/test starts etcd with v2 enabled)"))
struct EtcdV2ConformanceTests {
    @Test("store", arguments: StoreConformance.checks)
    func store(_ check: ConformanceCheck) async throws {
        try await Self.run(check)
    }

    @Test("recipes", arguments: RecipeConformance.checks)
    func recipes(_ check: ConformanceCheck) async throws {
        try await Self.run(check)
    }

    @Test("lifecycle", arguments: LifecycleConformance.checks + LifecycleConformance.processChecks)
    func lifecycle(_ check: ConformanceCheck) async throws {
        try await Self.run(check)
    }

    @Test("coordctl", arguments: CoordctlConformance.checks)
    func coordctl(_ check: ConformanceCheck) async throws {
        try await Self.run(check)
    }

    @Test("faults", arguments: FaultConformance.checks)
    func faults(_ check: ConformanceCheck) async throws {
        try await Self.run(check)
    }

    @Test("pause and churn", arguments: FaultConformance.pauseChecks + FaultConformance.churnChecks)
    func pause(_ check: ConformanceCheck) async throws {
        try await Self.run(check)
    }

    static func run(_ check: ConformanceCheck) async throws {
        let backend = EtcdV2Backend()
        let outcome = try await check.run(on: backend)
        if case .optedOut(let reason) = outcome {
            // Reported, never silent: the opt-out shows in the test output with its reason, and
            // only checks that declare a capability etcd v2 lacks may be opted out of.
            print("etcdv2 opts out of '\(check.name)': \(reason)")
            let store = try EtcdV2TestServer.makeStore()
            let capabilities = store.capabilities
            await store.close()
            #expect(!check.requires.isSubset(of: capabilities), "an opt-out must name a capability etcd v2 lacks")
        } else {
            #expect(outcome == .passed)
        }
    }
}
