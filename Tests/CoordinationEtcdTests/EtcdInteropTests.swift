import Coordination
import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Foundation
import Testing

/// A `Lock` and an `Election` from this library against `etcdctl lock` / `etcdctl elect`, which use
/// etcd's own concurrency package: a mixed fleet excludes each other and sees each other lead.
@Suite(
    "etcd interop with etcdctl",
    .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS (scripts/test starts etcd)"))
struct EtcdInteropTests {
    let endpoints = EtcdTestServer.environment(EtcdTestServer.endpointsVariable) ?? ""

    func withStore(_ body: @escaping @Sendable (EtcdStore) async throws -> Void) async throws {
        let store = try EtcdTestServer.makeStore()
        try await store.withRunning { store in try await body(store) }
    }

    static func uniqueName(_ what: String) -> String {
        "interop/\(what)-\(UInt32.random(in: 0 ... .max))"
    }

    @Test("our Lock first: etcdctl lock waits until we release")
    func ourLockExcludesEtcdctl() async throws {
        let name = Self.uniqueName("lock-a")
        try await withStore { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let grant = try await Lock(try Key(name), session: session, store: store).acquire()
            let peer = try EtcdctlPeer.start(
                endpoints: endpoints, arguments: ["lock", name, "echo", "peer-ran-while-holding"])
            // etcdctl queues behind us: its contender appears and waits.
            try await Self.waitForContenders(store, name, count: 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(!peer.printed.contains("peer-ran-while-holding"), "etcdctl ran while we held the lock")
            #expect(peer.isRunning)
            try await grant.release()
            try await peer.waitForOutput("peer-ran-while-holding")
            #expect(try await peer.waitForExit() == 0)
            try await session.close()
        }
    }

    @Test("etcdctl lock first: our Lock waits until etcdctl releases")
    func etcdctlLockExcludesOurs() async throws {
        let name = Self.uniqueName("lock-b")
        try await withStore { store in
            let peer = try EtcdctlPeer.start(endpoints: endpoints, arguments: ["lock", name])
            try await peer.waitForOutput("\(name)/")  // prints its key once it holds
            let holder = try #require(
                try await Lock(try Key(name), session: store.makeSession(ttl: .seconds(10)), store: store).holder())
            #expect(holder.key.path.hasPrefix(name + "/"))
            let session = try await store.makeSession(ttl: .seconds(10))
            let waiter = Task { try await Lock(try Key(name), session: session, store: store).acquire() }
            try await Self.waitForContenders(store, name, count: 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(!waiter.isCancelled)
            let line = try await store.line.contenders(in: try Key(name))
            #expect(line.first?.key == holder.key, "etcdctl still holds while we wait")
            peer.interrupt()
            let grant = try await withDeadline(.seconds(20), "our lock after etcdctl released") {
                try await waiter.value
            }
            #expect(grant.token > holder.token, "fencing token grows past etcdctl's grant")
            try await grant.release()
            try await session.close()
            _ = try await peer.waitForExit()
        }
    }

    @Test("our candidate leads first: etcdctl elect queues behind it and leads after we resign")
    func ourCandidateThenEtcdctl() async throws {
        let name = Self.uniqueName("elect-a")
        try await withStore { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let election = Election(try Key(name), store: store)
            let leadership = try await election.campaign(value: Array("swift-node".utf8), session: session)
            let peer = try EtcdctlPeer.start(endpoints: endpoints, arguments: ["elect", name, "etcdctl-node"])
            try await Self.waitForContenders(store, name, count: 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(!peer.printed.contains("etcdctl-node"), "etcdctl claimed leadership while we led")
            #expect(try await election.leader()?.stringValue == "swift-node")
            try await leadership.resign()
            try await peer.waitForOutput("etcdctl-node")
            #expect(try await election.leader()?.stringValue == "etcdctl-node")
            peer.interrupt()
            _ = try await peer.waitForExit()
            try await session.close()
        }
    }

    @Test("etcdctl elect leads first: our follower sees it, our candidate takes over when it stops")
    func etcdctlThenOurCandidate() async throws {
        let name = Self.uniqueName("elect-b")
        try await withStore { store in
            let election = Election(try Key(name), store: store)
            let observation = try await election.observe()
            let peer = try EtcdctlPeer.start(endpoints: endpoints, arguments: ["elect", name, "etcdctl-node"])
            try await peer.waitForOutput("etcdctl-node")
            let session = try await store.makeSession(ttl: .seconds(10))
            let campaign = Task { try await election.campaign(value: Array("swift-node".utf8), session: session) }
            try await Self.waitForContenders(store, name, count: 2)
            peer.interrupt()
            let leadership = try await withDeadline(.seconds(20), "our candidate leads") { try await campaign.value }
            let seen = try await withDeadline(.seconds(20), "the follower sees both leaders") {
                () async throws -> [String] in
                var seen: [String] = []
                for try await leader in observation {
                    seen.append(leader?.stringValue ?? "none")
                    if seen.last == "swift-node" { return seen }
                }
                return seen
            }
            #expect(seen.filter { $0 != "none" } == ["etcdctl-node", "swift-node"], "leaders seen: \(seen)")
            try await leadership.resign()
            try await session.close()
            _ = try await peer.waitForExit()
        }
    }

    static func waitForContenders(_ store: EtcdStore, _ name: String, count: Int) async throws {
        let prefix = try Key(name)
        try await withDeadline(.seconds(20), "\(count) contenders under \(name)") {
            for try await _ in try await store.watchTree(prefix) {
                if try await store.line.contenders(in: prefix).count >= count { return }
            }
        }
    }
}
