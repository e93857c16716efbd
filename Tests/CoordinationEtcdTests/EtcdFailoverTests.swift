import Coordination
import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Foundation
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Kills the raft leader of the 3-member cluster `scripts/with-servers` starts (a process that
/// script started, found by PID in ETCD_CLUSTER_PIDS) while a lock is held, a lock waiter and a
/// campaign are queued, and writes are in flight.
@Suite(
    "etcd failover on a 3-member cluster",
    .enabled(
        if: EtcdTestServer.environment("ETCD_CLUSTER_ENDPOINTS") != nil,
        "needs ETCD_CLUSTER_ENDPOINTS (scripts/test starts the cluster)")
)
struct EtcdFailoverTests {
    struct Member {
        let endpoint: Endpoint
        let pid: pid_t
    }

    static func members() throws -> [Member] {
        let endpoints = try #require(EtcdTestServer.environment("ETCD_CLUSTER_ENDPOINTS")).split(separator: ",")
        let pids = try #require(EtcdTestServer.environment("ETCD_CLUSTER_PIDS")).split(separator: ",").compactMap {
            pid_t($0)
        }
        try #require(endpoints.count == 3 && pids.count == 3)
        return zip(endpoints, pids).map { endpoint, pid in
            let colon = endpoint.lastIndex(of: ":")!
            return Member(
                endpoint: Endpoint(
                    host: String(endpoint[..<colon]), port: Int(endpoint[endpoint.index(after: colon)...])!),
                pid: pid)
        }
    }

    /// Asks etcdctl which member leads raft.
    static func leaderIndex(_ members: [Member]) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcdctl")
        process.arguments = [
            "--endpoints", members.map { "\($0.endpoint.host):\($0.endpoint.port)" }.joined(separator: ","),
            "endpoint", "status", "-w", "json",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let statuses = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        for (index, status) in statuses.enumerated() {
            let body = try #require(status["Status"] as? [String: Any])
            let header = try #require(body["header"] as? [String: Any])
            if let member = header["member_id"] as? NSNumber, let leader = body["leader"] as? NSNumber, member == leader
            {
                return index
            }
        }
        throw ConformanceFailure("no leader among \(statuses.count) members")
    }

    /// For freezing a member under a holder: a follower of `alive` (so that the others keep a
    /// quorum, with three alive, and go on serving), a store that starts on it and can move on to
    /// the others, a store on the others alone, and the follower's PID.
    static func storesAroundFollower(of alive: [Member], label: String) throws
        -> (onFollower: EtcdStore, elsewhere: EtcdStore, pid: pid_t)
    {
        let leader = try? leaderIndex(alive)
        let frozen = alive.indices.first { $0 != leader } ?? 0
        let others = alive.enumerated().filter { $0.offset != frozen }.map(\.element)
        var logger = Logger(label: label)
        logger.logLevel = .warning
        let onFollower = try EtcdStore(
            configuration: .init(
                endpoints: [alive[frozen].endpoint] + others.map(\.endpoint), requestTimeout: .seconds(3),
                logger: logger))
        let elsewhere = try EtcdStore(
            configuration: .init(endpoints: others.map(\.endpoint), requestTimeout: .seconds(3), logger: logger))
        return (onFollower, elsewhere, alive[frozen].pid)
    }

    /// Setup, not under test: waits until the cluster serves every store (a write under `root`,
    /// beside a lock rather than below it: on etcd any direct child of a lock's name is in line).
    static func waitUntilServing(_ stores: [EtcdStore], beside root: Key) async throws {
        try await withDeadline(.seconds(30), "the cluster serves both clients") {
            for store in stores {
                while (try? await store.put(try root.appending("ready"), Array("1".utf8))) == nil {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
    }

    /// Issue 15: a stopped member (SIGSTOP: no reset, no answer) under a holder that makes no calls
    /// of its own. Only its lease keep-alives notice: when one is late, the store checks the member
    /// with a PING, leaves it, and reopens the keep-alive and watch streams on another member well
    /// within the TTL. Before, the lease ran out about 4 s into the freeze while the other two
    /// members served.
    @Test("a member frozen under an idle holder (TTL 5 s): the session lives on and the watch misses nothing")
    func frozenMemberIsLeftInTime() async throws {
        let alive = try Self.members().filter { kill($0.pid, 0) == 0 }
        try #require(alive.count == 3, "three members alive")
        let (holder, writer, pid) = try Self.storesAroundFollower(of: alive, label: "etcd-frozen-idle")
        try await withRunning([holder, writer]) { stores in
            let root = try Key("failover/idle-\(UInt32.random(in: 0 ... .max))")
            let feed = try root.appending("feed")
            try await Self.waitUntilServing(stores, beside: root)
            let session = try await stores[0].makeSession(ttl: .seconds(5))
            let grant = try await Lock(try root.appending("lock"), session: session, store: stores[0]).acquire()
            let events = try await stores[0].watchTree(feed)
            let expired = Task {
                for await state in session.states() where state == .expired || state == .closed { return state }
                return SessionState.alive
            }
            _ = kill(pid, SIGSTOP)
            defer { _ = kill(pid, SIGCONT) }
            // Two TTLs of writes by another client while the holder's member is stopped.
            let values = (0..<10).map { "v\($0)" }
            let seen = Task {
                try await withDeadline(.seconds(25), "the holder's watch delivers every write") {
                    var received: [String] = []
                    for try await event in events {
                        if case .put(let entry) = event { received.append(entry.stringValue) }
                        if received.count == values.count { break }
                    }
                    return received
                }
            }
            for value in values {
                try await stores[1].put(try feed.appending("k"), Array(value.utf8))
                try await Task.sleep(for: .seconds(1))
            }
            let received = try await seen.value
            try expectEqual(received, values, "the watch resumed on another member without a gap")
            try expect(session.isActive, "the session outlived its member's freeze (state \(session.state))")
            try expect(!grant.isLost, "the lock is still held")
            _ = kill(pid, SIGCONT)
            try await grant.release()
            try await session.close()
            let end = await expired.value
            try expectEqual(end, .closed, "the session ended only when closed")
        }
    }

    @Test("freezing the member a holder uses (SIGSTOP for two TTLs): no guarded step after another grant")
    func freezeHolderMember() async throws {
        let alive = try Self.members().filter { kill($0.pid, 0) == 0 }
        try #require(alive.count >= 2, "at least two members alive")
        let (holder, waiter, pid) = try Self.storesAroundFollower(of: alive, label: "etcd-frozen")
        try await withRunning([holder, waiter]) { stores in
            let root = try Key("failover/frozen-\(UInt32.random(in: 0 ... .max))")
            let name = try root.appending("lock")
            try await Self.waitUntilServing(stores, beside: root)
            let outcome = try await FrozenMemberDrill.run(
                name, ttl: .seconds(4), holder: stores[0], waiter: stores[1],
                freeze: { _ = kill(pid, SIGSTOP) }, thaw: { _ = kill(pid, SIGCONT) })
            print("etcd frozen member: \(outcome)")
        }
    }

    @Test("killing the leader member: holders keep or are told they lost, no two holders, calls complete or fail typed")
    func killLeaderMember() async throws {
        let members = try Self.members()
        let leader = try Self.leaderIndex(members)
        // Connect to the raft leader first, so its death also forces this client to move.
        let ordered = [members[leader]] + members.enumerated().filter { $0.offset != leader }.map(\.element)
        var logger = Logger(label: "etcd-failover")
        logger.logLevel = .warning
        let store = try EtcdStore(
            configuration: .init(
                endpoints: ordered.map(\.endpoint),
                requestTimeout: .seconds(3),
                logger: logger
            ))
        try await store.withRunning { store in
            let root = try Key("failover/run-\(UInt32.random(in: 0 ... .max))")
            let lockName = try root.appending("lock")
            // Setup is not under test: wait until the cluster serves this client (on a saturated
            // machine the first calls can miss their deadline while the members settle).
            try await withDeadline(.seconds(30), "the cluster serves") {
                while true {
                    do {
                        try await store.put(try root.appending("ready"), Array("1".utf8))
                        return
                    } catch {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
            let holderSession = try await store.makeSession(ttl: .seconds(6))
            let waiterSession = try await store.makeSession(ttl: .seconds(6))
            let holder = try await Lock(lockName, session: holderSession, store: store).acquire()
            let waiterGranted = Locked(false)
            let waiter = Task {
                let grant = try await Lock(lockName, session: waiterSession, store: store).acquire()
                waiterGranted.withLock { $0 = true }
                return grant
            }

            let election = Election(try root.appending("election"), store: store)
            let firstCandidate = try await store.makeSession(ttl: .seconds(6))
            let secondCandidate = try await store.makeSession(ttl: .seconds(6))
            let leadership = try await election.campaign(value: Array("first".utf8), session: firstCandidate)
            let campaign = Task { try await election.campaign(value: Array("second".utf8), session: secondCandidate) }
            try await withDeadline(.seconds(10), "both queues formed") {
                while true {
                    let locks = try await store.line.contenders(in: lockName).count
                    let candidates = try await store.line.contenders(in: election.name).count
                    if locks >= 2 && candidates >= 2 { return }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }

            // Writes in flight across the kill: each completes or fails with a typed error, none hangs.
            let writes = Task { () async -> (ok: Int, failed: [CoordinationError.Code]) in
                var ok = 0
                var failed: [CoordinationError.Code] = []
                let end = ContinuousClock.now + .seconds(4)
                var index = 0
                while ContinuousClock.now < end {
                    index += 1
                    do {
                        try await store.put(try root.appending("w\(index)"), Array("\(index)".utf8))
                        ok += 1
                    } catch {
                        failed.append((error as? CoordinationError)?.code ?? .serverError)
                    }
                    try? await Task.sleep(for: .milliseconds(25))
                }
                return (ok, failed)
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(kill(ordered[0].pid, SIGKILL) == 0, "killed the leader member (pid \(ordered[0].pid))")

            let result = try await withDeadline(.seconds(60), "writes across the kill") { await writes.value }
            #expect(result.ok > 0)
            #expect(
                result.failed.allSatisfy { [.connectionFailed, .timeout, .serverError].contains($0) },
                "\(result.failed)")

            // The cluster serves again through this client.
            try await withDeadline(.seconds(20), "a write after the failover") {
                while true {
                    do {
                        try await store.put(try root.appending("after"), Array("ok".utf8))
                        return
                    } catch {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
            // No two holders: while the holder has not been told it lost the lock, the waiter must
            // not have it; the sessions survive a failover well inside their TTL.
            try await Task.sleep(for: .seconds(1))
            if !holder.isLost {
                #expect(!waiterGranted.withLock { $0 }, "the waiter was granted while the holder still held the lock")
                #expect(try await store.line.contenders(in: lockName).first?.key == holder.key)
            }
            #expect(holderSession.state != .expired || holder.isLost)
            try? await holder.release()
            let next = try await withDeadline(.seconds(20), "the waiter gets the lock") { try await waiter.value }
            #expect(next.token > holder.token)
            try await next.release()

            if !leadership.isLost {
                #expect(try await election.leader()?.stringValue == "first")
            }
            try? await leadership.resign()
            let second = try await withDeadline(.seconds(20), "the second candidate leads") { try await campaign.value }
            #expect(second.term > leadership.term)
            #expect(try await election.leader()?.stringValue == "second")
            for session in [holderSession, waiterSession, firstCandidate, secondCandidate] {
                try? await session.close()
            }
        }
    }
}
