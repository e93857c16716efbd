import Coordination
import CoordinationCore
import CoordinationTestKit
import Testing

@testable import CoordinationZooKeeper

/// The recipes' default session TTL against a store with ZooKeeper's default follower bound (12 s),
/// which refuses 10 s: the defaults must work as a new user writes them.
@Suite(
    "ZooKeeper default session TTL",
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts ZooKeeper)")
)
struct ZooKeeperDefaultTTLTests {
    func makeStore() throws -> ZooKeeperStore {
        var configuration = try ZooKeeperTestServer.configuration(ZooKeeperTestServer.standalone)
        configuration.followerBound = ZooKeeperStore.Configuration(endpoints: []).followerBound
        return try ZooKeeperStore(configuration: configuration)
    }

    @Test("limits name the shortest TTL the follower bound leaves room for, and a default 10 s longer than the bound")
    func limits() async throws {
        let store = try makeStore()
        #expect(store.limits.minimumSessionTTL == .seconds(13))
        #expect(store.limits.defaultSessionTTL == .seconds(22))
        let error = try await expectError(.invalidArgument) { _ = try await store.makeSession(ttl: .seconds(12.5)) }
        #expect(error.message.contains("follower-bound="), "\(error)")
        #expect(error.message.contains("13"), "the error names the shortest TTL accepted: \(error)")
        await store.close()
    }

    @Test("LeaderCandidate and ServiceRegistration with their default TTL lead and register")
    func recipesWithDefaults() async throws {
        let store = try makeStore()
        let suffix = UInt32.random(in: 0 ... .max)
        let candidate = LeaderCandidate(
            election: try Key("default-ttl/election-\(suffix)"), value: Array("node-1".utf8), store: store)
        let instance = try ServiceInstance(name: "api", id: "api-\(suffix)", address: "127.0.0.1", port: 8080)
        let registration = ServiceRegistration(instance, base: try Key("default-ttl/services-\(suffix)"), store: store)
        #expect(candidate.sessionTTL == .seconds(22))
        #expect(registration.sessionTTL == .seconds(22))
        try await store.withRunning { _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await candidate.run() }
                group.addTask { try await registration.run() }
                try await withDeadline(.seconds(15), "the candidate to lead") {
                    for await status in candidate.statuses() where status.isLeader { return }
                    throw ConformanceFailure("the candidate stopped without leading: \(candidate.status)")
                }
                try await waitUntilRegistered(registration)
                #expect(candidate.leadership?.session.ttl == .seconds(22))
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }
}
