import Coordination
import CoordinationConsul
import CoordinationCore
import CoordinationTestKit
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A 3-server Consul cluster (started by `scripts/with-servers`, one server per loopback address):
/// the Raft leader is killed while a lock is held and a contender waits, through a follower's agent.
@Suite(
    "consul failover",
    // One drill at a time: the frozen-server drill stops a server, and the cluster may be electing
    // a new leader while it is stopped; the leader-kill drill must not ask it then.
    .serialized,
    .enabled(
        if: ConsulTestServer.environment("CONSUL_CLUSTER_ADDRS") != nil,
        "needs CONSUL_CLUSTER_ADDRS (scripts/test starts a 3-server Consul cluster)"))
struct ConsulFailoverTests {
    /// The Raft leader's IP as `address` reports it, asked again for up to 10 s while the cluster
    /// has none (an election after an earlier drill stopped a server).
    static func leaderIP(asking address: String) async -> String? {
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            if let url = URL(string: "http://\(address)/v1/status/leader"),
                let (data, _) = try? await URLSession.shared.data(from: url),
                let text = try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed) as? String,
                let colon = text.lastIndex(of: ":")
            {
                return String(text[..<colon])
            }
            try? await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        return nil
    }

    @Test("freezing the server a holder's agent is (SIGSTOP for two TTLs): no guarded step after another grant")
    func freezeHolderServer() async throws {
        let addresses = try #require(ConsulTestServer.environment("CONSUL_CLUSTER_ADDRS")).split(separator: ",").map(
            String.init)
        let pids = try #require(ConsulTestServer.environment("CONSUL_CLUSTER_PIDS")).split(separator: ",").compactMap {
            Int32($0)
        }
        try #require(addresses.count == 3 && pids.count == 3)
        let alive = addresses.indices.filter { kill(pids[$0], 0) == 0 }
        try #require(alive.count >= 2, "at least two servers alive")
        let leaderIP = await Self.leaderIP(asking: addresses[alive[0]])
        // A follower, so the leader keeps counting the holder's session down while it is frozen.
        let frozen = alive.first { !addresses[$0].hasPrefix((leaderIP ?? "-") + ":") } ?? alive[0]
        let other = alive.first { $0 != frozen }!
        func store(at index: Int) throws -> ConsulStore {
            let parts = addresses[index].split(separator: ":")
            var configuration = try ConsulTestServer.configuration()
            configuration.endpoint = Endpoint(host: String(parts[0]), port: Int(parts[1])!)
            configuration.requestTimeout = .seconds(2)
            return try ConsulStore(configuration: configuration)
        }
        let pid = pids[frozen]
        try await withRunning([try store(at: frozen), try store(at: other)]) { stores in
            let outcome = try await FrozenMemberDrill.run(
                try Key("failover/frozen-\(UInt32.random(in: 0 ... .max))"), ttl: .seconds(2),
                holder: stores[0], waiter: stores[1],
                freeze: { _ = kill(pid, SIGSTOP) }, thaw: { _ = kill(pid, SIGCONT) })
            print("consul frozen server: \(outcome)")
        }
    }

    @Test("a held lock and a waiting contender survive the loss of the Raft leader")
    func leaderKilled() async throws {
        let addresses = try #require(ConsulTestServer.environment("CONSUL_CLUSTER_ADDRS")).split(separator: ",").map(
            String.init)
        let pids = try #require(ConsulTestServer.environment("CONSUL_CLUSTER_PIDS")).split(separator: ",").compactMap {
            Int32($0)
        }
        try #require(addresses.count == 3 && pids.count == 3)
        let leaderIP = try #require(await Self.leaderIP(asking: addresses[0]))
        let leader = try #require(addresses.firstIndex { $0.hasPrefix(leaderIP + ":") })
        let follower = addresses.indices.first { $0 != leader }!
        let parts = addresses[follower].split(separator: ":")

        var configuration = try ConsulTestServer.configuration()
        configuration.endpoint = Endpoint(host: String(parts[0]), port: Int(parts[1])!)
        let holderStore = try ConsulStore(configuration: configuration)
        let waiterStore = try ConsulStore(configuration: configuration)
        let name = try Key("failover/lock-\(UInt32.random(in: 0 ... .max))")
        try await holderStore.withRunning { holderStore in
            try await waiterStore.withRunning { waiterStore in
                let holderSession = try await holderStore.makeSession(ttl: .seconds(10))
                let grant = try await Lock(name, session: holderSession, store: holderStore).acquire()
                let waiterSession = try await waiterStore.makeSession(ttl: .seconds(10))
                let waiter = Task { try await Lock(name, session: waiterSession, store: waiterStore).acquire() }
                try await withDeadline(.seconds(20), "the waiter queues") {
                    while try await holderStore.line.contenders(in: name).count < 2 {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }

                // Kill the Raft leader (a server process the test script started).
                #expect(kill(pids[leader], SIGKILL) == 0)
                try await withDeadline(.seconds(60), "the surviving servers elect a new leader") {
                    while true {
                        if let ip = await Self.leaderIP(asking: addresses[follower]), ip != leaderIP { return }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }

                // The store keeps working through the follower's agent once a leader is back.
                let probe = try name.appending("probe")
                try await withDeadline(.seconds(30), "a write succeeds after the election") {
                    while true {
                        do {
                            try await holderStore.put(probe, Array("after".utf8))
                            return
                        } catch let error as CoordinationError where error.code == .serverError {
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
                try await holderStore.delete(probe)
                #expect(holderSession.isActive, "the holder's session outlived the election")
                #expect(try await holderStore.line.contenders(in: name).first?.session == holderSession.id)
                #expect(!waiter.isCancelled)

                try await grant.release()
                let next = try await withDeadline(.seconds(30), "the waiter is granted after the release") {
                    try await waiter.value
                }
                #expect(next.token > grant.token)
                try await next.release()
                try await holderSession.close()
                try await waiterSession.close()
            }
        }
    }
}
