import Coordination
import CoordinationCore
import ServiceLifecycle
import Synchronization

/// The recipe conformance suite: locks, semaphore, election, registration and barriers, run over a
/// backend's real store.
public enum RecipeConformance {
    static let suite = "recipes"

    public static let checks: [ConformanceCheck] = [
        lockMutualExclusion, lockRequeueUnderTheSameKeyDoesNotStall, lockIsFIFO, lockReleaseWakesExactlyOneWaiter,
        lockFencingTokensIncrease,
        lockLossIsSignalledBeforeTheNextGrant, cancelledWaiterLeavesNoKey, tryAcquireLeavesNoKey,
        unlockIsGuarded, withLockCancelsWorkOnLoss, leaderFailoverOnCrash, leaderFailoverOnResign,
        followerSeesEveryLeaderChange, proclaimKeepsTheTerm, registrationSurvivesSessionLoss,
        discoverySnapshotThenChanges, semaphoreNeverExceedsPermits, semaphoreCancelledWaiterLeavesNoKey,
        barrierReleasesOnRemove, doubleBarrierEntersAndLeavesTogether, waitsWithTimeouts,
    ]

    static func check(
        _ name: String,
        clients: Int = 1,
        requires: StoreCapabilities = [],
        _ body: @escaping @Sendable (ConformanceContext) async throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck(suite: suite, name, clients: clients, requires: requires, body: body)
    }

    /// Waits until the line under `prefix` has `count` contenders, as the store counts them
    /// (`ContenderLine.contenders(in:)`: on Consul the `api.Lock` key beside the line is not a contender).
    static func waitForLine(_ store: any KeyValueStore, _ prefix: Key, count: Int) async throws {
        try await withDeadline(.seconds(20), "\(count) contenders in line under \(prefix)") {
            for try await _ in try await store.watchTree(prefix) {
                if try await store.line.contenders(in: prefix).count == count { return }
            }
        }
    }

    /// Waits until `count` keys stand directly under `prefix` (barrier members: keys, not contenders).
    static func waitForChildren(_ store: any KeyValueStore, _ prefix: Key, count: Int) async throws {
        try await withDeadline(.seconds(20), "\(count) keys directly under \(prefix)") {
            for try await _ in try await store.watchTree(prefix) {
                if try await store.list(prefix).filter({ $0.key.isChild(of: prefix) }).count == count { return }
            }
        }
    }

    /// Waits for `count` signals within a generous deadline.
    static func awaitCount(_ stream: AsyncStream<Void>, _ count: Int, _ what: String) async throws {
        try await withDeadline(.seconds(20), what) {
            var seen = 0
            for await _ in stream {
                seen += 1
                if seen == count { return }
            }
        }
    }

    // MARK: Lock

    static let lockMutualExclusion = check(
        "lock: mutual exclusion among 20 contenders, checked by fencing tokens", clients: 4
    ) { ctx in
        let name = try ctx.key("mutex")
        struct Tally {
            var inside = 0
            var maxInside = 0
            var tokens: [FencingToken] = []
        }
        let tally = Locked(Tally())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                let store = ctx.clients[index % ctx.clients.count]
                group.addTask {
                    let session = try await store.makeSession(ttl: ctx.sessionTTL * 10)
                    let lock = Lock(name, session: session, store: store)
                    for _ in 0..<2 {
                        let grant = try await lock.acquire()
                        tally.withLock { tally in
                            tally.inside += 1
                            tally.maxInside = max(tally.maxInside, tally.inside)
                            tally.tokens.append(grant.token)
                        }
                        await Task.yield()
                        tally.withLock { $0.inside -= 1 }
                        try await grant.release()
                    }
                    try await session.close()
                }
            }
            try await group.waitForAll()
        }
        let result = tally.withLock { $0 }
        try expectEqual(result.maxInside, 1, "holders at once")
        try expectEqual(result.tokens.count, 40, "grants")
        try expect(
            zip(result.tokens, result.tokens.dropFirst()).allSatisfy { $0 < $1 },
            "tokens strictly increase in grant order: \(result.tokens)")
    }

    static let lockRequeueUnderTheSameKeyDoesNotStall = check(
        "lock: contenders that release and queue again with the same session never stall the line",
        clients: 2
    ) { ctx in
        // With one session per contender the key (`name/<session>`) comes back after every release:
        // a waiter must wait for its predecessor's incarnation, not for the key, to be gone.
        let name = try ctx.key("requeue")
        let grants = Locked(0)
        try await withDeadline(.seconds(60), "4 contenders × 25 grants each") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<4 {
                    let store = ctx.clients[index % ctx.clients.count]
                    group.addTask {
                        let session = try await store.makeSession(ttl: ctx.sessionTTL * 10)
                        let lock = Lock(name, session: session, store: store)
                        for _ in 0..<25 {
                            let grant = try await lock.acquire()
                            grants.withLock { $0 += 1 }
                            try await grant.release()
                        }
                        try await session.close()
                    }
                }
                try await group.waitForAll()
            }
        }
        try expectEqual(grants.withLock { $0 }, 100, "grants")
    }

    static let lockIsFIFO = check("lock: waiters are granted in arrival order", clients: 2) { ctx in
        let name = try ctx.key("fifo")
        let holderSession = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let holder = try await Lock(name, session: holderSession, store: ctx.store).acquire()
        let order = Locked<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<5 {
                let store = ctx.clients[index % 2]
                let session = try await store.makeSession(ttl: ctx.sessionTTL * 10)
                group.addTask {
                    let grant = try await Lock(name, session: session, store: store).acquire()
                    order.withLock { $0.append(index) }
                    try await grant.release()
                    try await session.close()
                }
                try await waitForLine(ctx.store, name, count: index + 2)  // arrival order is fixed
            }
            try await holder.release()
            try await group.waitForAll()
        }
        try expectEqual(order.withLock { $0 }, [0, 1, 2, 3, 4], "grant order")
        try await holderSession.close()
    }

    static let lockReleaseWakesExactlyOneWaiter = check("lock: a release wakes exactly one waiter (herd-free)") { ctx in
        let counted = InstrumentedStore(ctx.store)
        let name = try ctx.key("herd")
        let holderSession = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let holder = try await Lock(name, session: holderSession, store: ctx.store).acquire()
        let granted = AsyncStream<Int>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var sessions: [Session] = []
            for index in 0..<6 {
                let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
                sessions.append(session)
                group.addTask {
                    do {
                        let grant = try await Lock(name, session: session, store: counted).acquire()
                        granted.continuation.yield(index)
                        _ = grant
                    } catch let error as CoordinationError
                        where error.code == .cancelled || error.code == .sessionClosed
                    {
                        // Released at the end of the check.
                    }
                }
                // Arrival order is fixed: waiter 0 is first in line however the tasks are scheduled.
                try await waitForLine(ctx.store, name, count: index + 2)
            }
            try await waitForLine(ctx.store, name, count: 7)
            // Every waiter has looked at the line (when joining, or with one read) and now watches
            // its predecessor.
            try await withDeadline(.seconds(10), "waiters settle") {
                while counted.count("watch") < 6 {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            // The waiters raced to join: the first waiter is whoever is second in line, not the task
            // that was started first.
            let line = try await ctx.store.line.contenders(in: name)
            let firstWaiter = line.count > 1 ? sessions.firstIndex { $0.id == line[1].session } : nil
            counted.resetCounts()
            try await holder.release()
            var iterator = granted.stream.makeAsyncIterator()
            let first = try await withDeadline(.seconds(10), "the next waiter is granted") { () async -> Int? in
                var copy = granted.stream.makeAsyncIterator()
                return await copy.next()
            }
            _ = iterator
            try expectEqual(first, firstWaiter ?? 0, "the first waiter in line is granted")
            // Give any wrongly woken waiter time to show itself; a correct lock makes no more calls.
            try await Task.sleep(for: .milliseconds(200))
            // The woken waiter may re-read the line once (or not at all when its predecessor was the
            // head); nobody else reads the line or starts a watch.
            let reads = counted.count("contenders")
            try expect(reads <= 1, "waiters that looked at the line after one release: \(reads)")
            try expectEqual(counted.count("watch"), 0, "watches started after one release")
            for session in sessions { try await session.close() }
            group.cancelAll()
        }
        try await holderSession.close()
    }

    static let lockFencingTokensIncrease = check(
        "lock: fencing tokens strictly increase across grants and sessions", clients: 2
    ) { ctx in
        let name = try ctx.key("fencing")
        var last: FencingToken?
        for round in 0..<6 {
            let store = ctx.clients[round % 2]
            let session = try await store.makeSession(ttl: ctx.sessionTTL * 10)
            let grant = try await Lock(name, session: session, store: store).acquire()
            if let last { try expect(grant.token > last, "token \(grant.token) after \(last)") }
            last = grant.token
            try await grant.release()
            try await session.close()
        }
    }

    static let lockLossIsSignalledBeforeTheNextGrant = check(
        "lock: loss on session expiry is signalled before anyone else is granted", clients: 2
    ) { ctx in
        let name = try ctx.key("lost")
        let crashed = try await ctx.clients[0].makeSession(ttl: ctx.sessionTTL)
        let grant = try await Lock(name, session: crashed, store: ctx.clients[0]).acquire()
        let waiterSession = try await ctx.clients[1].makeSession(ttl: ctx.sessionTTL * 10)
        let next = Task { () async throws -> Bool in
            let granted = try await Lock(name, session: waiterSession, store: ctx.clients[1]).acquire()
            let previousLost = grant.isLost  // what the old holder knows at the moment of the new grant
            try await granted.release()
            return previousLost
        }
        try await waitForLine(ctx.store, name, count: 2)
        crashed.abandon()
        let lostBeforeGrant = try await withDeadline(ctx.expiryDeadline, "the waiter is granted after expiry") {
            try await next.value
        }
        try expect(lostBeforeGrant, "the old holder knew it had lost the lock when the next grant happened")
        let reason = try await withDeadline(.seconds(5), "lost() returns") { await grant.lost() }
        try expectEqual(reason?.code, .lockLost, "loss reason")
        try await expectError(.notHolder) { try await grant.release() }
        try await waiterSession.close()
    }

    static let cancelledWaiterLeavesNoKey = check("lock: a cancelled waiter leaves no key behind") { ctx in
        let name = try ctx.key("cancel")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let holder = try await Lock(name, session: session, store: ctx.store).acquire()
        let waiterSession = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let waiter = Task { try await Lock(name, session: waiterSession, store: ctx.store).acquire() }
        try await waitForLine(ctx.store, name, count: 2)
        waiter.cancel()
        do {
            _ = try await withDeadline(.seconds(10), "the cancelled waiter returns") { try await waiter.value }
            throw ConformanceFailure("a cancelled waiter was granted the lock")
        } catch let error as CoordinationError {
            try expectEqual(error.code, .cancelled, "error of a cancelled wait")
        }
        try expectEqual(
            try await ctx.store.line.contenders(in: name).map(\.key), [holder.key], "line after cancellation")
        try await holder.release()
        try await session.close()
        try await waiterSession.close()
    }

    static let tryAcquireLeavesNoKey = check("lock: tryAcquire takes a free lock and leaves no key when busy") { ctx in
        let name = try ctx.key("try")
        let first = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let second = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        guard let grant = try await Lock(name, session: first, store: ctx.store).tryAcquire() else {
            throw ConformanceFailure("tryAcquire of a free lock failed")
        }
        let busy = try await Lock(name, session: second, store: ctx.store).tryAcquire()
        try expect(busy == nil, "tryAcquire of a held lock returns nil")
        try expectEqual(try await ctx.store.line.contenders(in: name).count, 1, "contenders after a failed tryAcquire")
        try await grant.release()
        try await first.close()
        try await second.close()
    }

    static let unlockIsGuarded = check("lock: release only removes the holder's own, current key") { ctx in
        let name = try ctx.key("guarded")
        let first = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let grant = try await Lock(name, session: first, store: ctx.store).acquire()
        try await grant.release()
        try await expectError(.notHolder) { try await grant.release() }
        let second = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let other = try await Lock(name, session: second, store: ctx.store).acquire()
        try await expectError(.notHolder) { try await grant.release() }
        try expectEqual(
            try await ctx.store.line.contenders(in: name).map(\.key), [other.key], "the new holder keeps its key")
        try await other.release()
        try await first.close()
        try await second.close()
    }

    static let withLockCancelsWorkOnLoss = check(
        "lock: withLock cancels the work and throws lockLost when the grant is lost", clients: 2,
        requires: .revokeForeignSession
    ) { ctx in
        let name = try ctx.key("withLock")
        let session = try await ctx.clients[0].makeSession(ttl: ctx.sessionTTL * 10)
        let started = AsyncStream<Void>.makeStream()
        let work = Task {
            try await Lock(name, session: session, store: ctx.clients[0]).withLock { _ in
                started.continuation.yield()
                try await Task.sleep(for: .seconds(3600))
            }
        }
        _ = try await withDeadline(.seconds(10), "work starts") { () async -> Void? in
            var iterator = started.stream.makeAsyncIterator()
            return await iterator.next()
        }
        try await ctx.clients[1].revokeSession(session.id)
        do {
            try await withDeadline(ctx.expiryDeadline, "withLock returns after the loss") { try await work.value }
            throw ConformanceFailure("withLock returned normally after its grant was lost")
        } catch let error as CoordinationError {
            try expectEqual(error.code, .lockLost, "withLock's error")
        }
    }

    // MARK: Election

    static func runCandidates<T: Sendable>(
        _ candidates: [LeaderCandidate],
        _ body: @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for candidate in candidates { group.addTask { try await candidate.run() } }
            defer { group.cancelAll() }
            let result = try await body()
            group.cancelAll()
            return result
        }
    }

    static func waitForStatus(
        _ candidate: LeaderCandidate,
        within deadline: Duration,
        _ what: String,
        _ predicate: @escaping @Sendable (LeaderCandidate.Status) -> Bool
    ) async throws -> LeaderCandidate.Status {
        try await withDeadline(deadline, what) {
            for await status in candidate.statuses() where predicate(status) { return status }
            throw ConformanceFailure("\(what): candidate stopped")
        }
    }

    static let leaderFailoverOnCrash = check(
        "election: a crashed leader is replaced within one session TTL", clients: 2
    ) { ctx in
        let name = try ctx.key("crash")
        let first = LeaderCandidate(election: name, value: "a".bytes, store: ctx.clients[0], sessionTTL: ctx.sessionTTL)
        let second = LeaderCandidate(
            election: name, value: "b".bytes, store: ctx.clients[1], sessionTTL: ctx.sessionTTL)
        try await runCandidates([first]) {
            let firstStatus = try await waitForStatus(first, within: .seconds(15), "first leads") { $0.isLeader }
            try await runCandidates([second]) {
                try await waitForLine(ctx.store, name, count: 2)
                guard case .leader(let oldTerm) = firstStatus, let session = first.leadership?.session else {
                    throw ConformanceFailure("no leadership")
                }
                session.abandon()
                let status = try await waitForStatus(second, within: ctx.expiryDeadline, "second takes over") {
                    $0.isLeader
                }
                guard case .leader(let newTerm) = status else { throw ConformanceFailure("not leader") }
                try expect(newTerm > oldTerm, "term grows: \(oldTerm) → \(newTerm)")
                try expect(!first.status.isLeader, "the crashed leader no longer claims leadership")
            }
        }
    }

    static let leaderFailoverOnResign = check("election: resign hands leadership to the next candidate", clients: 2) {
        ctx in
        let name = try ctx.key("resign")
        let first = LeaderCandidate(
            election: name, value: "a".bytes, store: ctx.clients[0], sessionTTL: ctx.sessionTTL * 10)
        let second = LeaderCandidate(
            election: name, value: "b".bytes, store: ctx.clients[1], sessionTTL: ctx.sessionTTL * 10)
        try await runCandidates([first]) {
            _ = try await waitForStatus(first, within: .seconds(15), "first leads") { $0.isLeader }
            try await runCandidates([second]) {
                try await waitForLine(ctx.store, name, count: 2)
                try await first.resign()
                _ = try await waitForStatus(second, within: .seconds(15), "second leads after resign") { $0.isLeader }
                _ = try await waitForStatus(first, within: .seconds(15), "first campaigns again") { $0 == .campaigning }
                let leader = try await Election(name, store: ctx.store).leader()
                try expectEqual(leader?.stringValue, "b", "leader value")
            }
        }
    }

    static let followerSeesEveryLeaderChange = check(
        "election: a follower sees the current leader first, then every change", clients: 2
    ) { ctx in
        let name = try ctx.key("observe")
        let election = Election(name, store: ctx.clients[1])
        let observation = try await election.observe()
        let sessions = try await [
            ctx.store.makeSession(ttl: ctx.sessionTTL * 10), ctx.store.makeSession(ttl: ctx.sessionTTL * 10),
        ]
        let campaigner = Election(name, store: ctx.store)
        let a = try await campaigner.campaign(value: "a".bytes, session: sessions[0])
        let waitingB = Task { try await campaigner.campaign(value: "b".bytes, session: sessions[1]) }
        try await waitForLine(ctx.store, name, count: 2)
        try await a.resign()
        let b = try await waitingB.value
        try await b.resign()
        let seen = try await withDeadline(.seconds(15), "follower sees 4 states") { () async throws -> [String] in
            var seen: [String] = []
            for try await leader in observation {
                seen.append(leader?.stringValue ?? "none")
                if seen.count == 4 { return seen }
            }
            return seen
        }
        try expectEqual(seen, ["none", "a", "b", "none"], "leaders observed")
        for session in sessions { try await session.close() }
    }

    static let proclaimKeepsTheTerm = check("election: proclaim changes the value followers see and keeps the term") {
        ctx in
        let name = try ctx.key("proclaim")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let election = Election(name, store: ctx.store)
        let leadership = try await election.campaign(value: "v1".bytes, session: session)
        try await leadership.proclaim("v2".bytes)
        let leader = try await election.leader()
        try expectEqual(leader?.stringValue, "v2", "proclaimed value")
        try expectEqual(leader?.term, leadership.term, "term kept")
        try await leadership.resign()
        try await expectError(.notHolder) { try await leadership.proclaim("v3".bytes) }
        try await session.close()
    }

    // MARK: Registration and discovery

    static let registrationSurvivesSessionLoss = check(
        "registration: re-registered automatically after its session is lost", clients: 2,
        requires: .revokeForeignSession
    ) { ctx in
        let base = try ctx.key("services")
        let registration = ServiceRegistration(
            try ServiceInstance(name: "api", id: "api-1", address: "127.0.0.1", port: 8080, metadata: ["zone": "a"]),
            base: base,
            store: ctx.clients[0],
            sessionTTL: ctx.sessionTTL
        )
        let discovery = ServiceDiscovery(base: base, store: ctx.clients[1])
        let key = try base.appending("api/api-1")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await registration.run() }
            defer { group.cancelAll() }
            try await waitUntilRegistered(registration)
            guard let lost = registration.currentSession else {
                throw ConformanceFailure("no session after registering")
            }
            lost.abandon()  // the process pauses: its heartbeats stop
            try await withDeadline(ctx.expiryDeadline * 2, "registered again with a new session") {
                var sawLoss = false
                for await status in registration.statuses() {
                    if status == .reregistering { sawLoss = true }
                    if sawLoss, case .registered = status { return }
                }
            }
            try expectEqual(await lost.waitUntilEnded(), .expired, "the lost session's state")
            // After the old session is gone on the server too, the instance is still there, bound to
            // the new session (a backend may or may not show a gap in between).
            try await withDeadline(ctx.expiryDeadline * 2, "the key bound to the new session") {
                while true {
                    let entry = try await ctx.clients[1].get(key)
                    if let session = entry?.session, session != lost.id, session == registration.currentSession?.id {
                        return
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try await ctx.clients[1].revokeSession(lost.id)  // whatever the server still holds of it
            let instances = try await discovery.instances(of: "api")
            try expectEqual(instances.map(\.id), ["api-1"], "instances after the loss")
            try expectEqual(instances.first?.metadata["zone"], "a", "metadata kept across re-registration")
            group.cancelAll()
        }
    }

    static let discoverySnapshotThenChanges = check(
        "discovery: a snapshot, then registrations and deregistrations", clients: 2
    ) { ctx in
        let base = try ctx.key("catalog")
        let discovery = ServiceDiscovery(base: base, store: ctx.clients[1])
        let one = ServiceRegistration(
            try ServiceInstance(name: "db", id: "db-1", address: "10.0.0.1", port: 5432), base: base, store: ctx.store,
            sessionTTL: ctx.sessionTTL * 10)
        let two = ServiceRegistration(
            try ServiceInstance(name: "db", id: "db-2", address: "10.0.0.2", port: 5432), base: base, store: ctx.store,
            sessionTTL: ctx.sessionTTL * 10)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await one.run() }
            try await waitUntilRegistered(one, "db-1 registered")
            let stream = try await discovery.watch("db")
            let twoTask = Task { try await two.run() }
            let changes = try await withDeadline(.seconds(15), "discovery events") {
                () async throws -> [DiscoveryEvent.Change] in
                var changes: [DiscoveryEvent.Change] = []
                for try await event in stream {
                    changes.append(event.change)
                    if case .registered = event.change { twoTask.cancel() }
                    if case .deregistered = event.change { return changes }
                }
                return changes
            }
            try expectEqual(changes.count, 3, "events: \(changes)")
            try expectEqual(changes.first, .snapshot, "first event")
            guard case .registered(let added) = changes[1], case .deregistered(let removed) = changes[2] else {
                throw ConformanceFailure("unexpected changes \(changes)")
            }
            try expectEqual(added.id, "db-2", "registered instance")
            try expectEqual(added.address, "10.0.0.2", "registered address")
            try expectEqual(removed, "db-2", "deregistered instance")
            try expectEqual(try await discovery.instances(of: "db").map(\.id), ["db-1"], "remaining instances")
            group.cancelAll()
        }
    }

    // MARK: Semaphore

    static let semaphoreNeverExceedsPermits = check("semaphore: never more than N holders", clients: 2) { ctx in
        let name = try ctx.key("semaphore")
        struct Tally {
            var inside = 0
            var maxInside = 0
            var grants = 0
        }
        let tally = Locked(Tally())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<10 {
                let store = ctx.clients[index % 2]
                group.addTask {
                    let session = try await store.makeSession(ttl: ctx.sessionTTL * 10)
                    let semaphore = Semaphore(name, permits: 3, session: session, store: store)
                    for _ in 0..<2 {
                        let grant = try await semaphore.acquire()
                        tally.withLock { tally in
                            tally.inside += 1
                            tally.grants += 1
                            tally.maxInside = max(tally.maxInside, tally.inside)
                        }
                        try await Task.sleep(for: .milliseconds(5))
                        tally.withLock { $0.inside -= 1 }
                        try await grant.release()
                    }
                    try await session.close()
                }
            }
            try await group.waitForAll()
        }
        let result = tally.withLock { $0 }
        try expect(result.maxInside <= 3, "at most 3 holders at once, saw \(result.maxInside)")
        try expectEqual(result.grants, 20, "grants")
    }

    static let semaphoreCancelledWaiterLeavesNoKey = check("semaphore: a cancelled waiter leaves no key behind") {
        ctx in
        let name = try ctx.key("semaphore-cancel")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let other = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let waiterSession = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let held = [
            try await Semaphore(name, permits: 2, session: session, store: ctx.store).acquire(),
            try await Semaphore(name, permits: 2, session: other, store: ctx.store).acquire(),
        ]
        let waiter = Task { try await Semaphore(name, permits: 2, session: waiterSession, store: ctx.store).acquire() }
        try await waitForLine(ctx.store, name, count: 3)
        waiter.cancel()
        do {
            _ = try await withDeadline(.seconds(10), "the cancelled waiter returns") { try await waiter.value }
            throw ConformanceFailure("a cancelled waiter got a permit")
        } catch let error as CoordinationError {
            try expectEqual(error.code, .cancelled, "error of a cancelled wait")
        }
        try expectEqual(
            Set(try await ctx.store.line.contenders(in: name).map(\.key)), Set(held.map(\.key)),
            "line after cancellation"
        )
        for grant in held { try await grant.release() }
        for s in [session, other, waiterSession] { try await s.close() }
    }

    // MARK: Barriers

    static let waitsWithTimeouts = check(
        "timeouts: lock, semaphore, campaign and barrier waits throw timeout and leave no key; free ones return"
    ) { ctx in
        let clock = ContinuousClock()
        let holderSession = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let waiterSession = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let timeout = Duration.milliseconds(500)
        /// `wait` throws `timeout`, after the timeout and well before 10 s.
        func expectTimeout<T>(_ what: String, _ wait: () async throws -> T) async throws {
            let started = clock.now
            let error = try await expectError(.timeout) { try await wait() }
            let took = started.duration(to: clock.now)
            guard took >= timeout, took < .seconds(10) else {
                throw ConformanceFailure("\(what): timed out after \(took), asked \(timeout) (\(error))")
            }
        }

        // Lock: held by another session; the waiter times out and its contender is gone.
        let lockName = try ctx.key("timeout-lock")
        let held = try await Lock(lockName, session: holderSession, store: ctx.store).acquire()
        try await expectTimeout("lock") {
            try await Lock(lockName, session: waiterSession, store: ctx.store).acquire(timeout: timeout)
        }
        try expectEqual(
            try await ctx.store.line.contenders(in: lockName).map(\.key), [held.key], "lock line after the timeout")
        try await held.release()
        let free = try await Lock(lockName, session: waiterSession, store: ctx.store).acquire(timeout: .seconds(10))
        try await free.release()

        // Semaphore with one permit, taken.
        let semaphoreName = try ctx.key("timeout-semaphore")
        let permit = try await Semaphore(semaphoreName, permits: 1, session: holderSession, store: ctx.store).acquire()
        try await expectTimeout("semaphore") {
            try await Semaphore(semaphoreName, permits: 1, session: waiterSession, store: ctx.store).acquire(
                timeout: timeout)
        }
        try expectEqual(
            try await ctx.store.line.contenders(in: semaphoreName).map(\.key), [permit.key],
            "semaphore line after the timeout")
        try await permit.release()

        // Election with a leader.
        let electionName = try ctx.key("timeout-election")
        let election = Election(electionName, store: ctx.store)
        let leadership = try await election.campaign(value: "a".bytes, session: holderSession)
        try await expectTimeout("campaign") {
            try await election.campaign(value: "b".bytes, session: waiterSession, timeout: timeout)
        }
        try expectEqual(
            try await ctx.store.line.contenders(in: electionName).map(\.key), [leadership.key],
            "election line after the timeout")
        try await leadership.resign()

        // Barrier: set, then removed.
        let barrier = Barrier(try ctx.key("timeout-barrier"), store: ctx.store)
        try await barrier.set()
        try await expectTimeout("barrier") { try await barrier.wait(timeout: timeout) }
        try await barrier.remove()
        try await barrier.wait(timeout: .seconds(10))

        try await expectError(.invalidArgument) {
            try await Lock(lockName, session: waiterSession, store: ctx.store).acquire(timeout: .zero)
        }
        try await holderSession.close()
        try await waiterSession.close()
    }

    static let barrierReleasesOnRemove = check(
        "barrier: waiters are held while it is set and released when it is removed", clients: 2
    ) { ctx in
        let barrier = Barrier(try ctx.key("barrier"), store: ctx.store)
        try await barrier.set()
        let released = Locked(0)
        let done = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<3 {
                let waiter = Barrier(barrier.key, store: ctx.clients[index % 2])
                group.addTask {
                    try await waiter.wait()
                    released.withLock { $0 += 1 }
                    done.continuation.yield()
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            try expectEqual(released.withLock { $0 }, 0, "waiters released while the barrier is set")
            try await barrier.remove()
            try await awaitCount(done.stream, 3, "waiters released")
            try await group.waitForAll()
        }
        try expectEqual(released.withLock { $0 }, 3, "waiters released after removal")
        try await barrier.wait()  // not set: returns at once
    }

    static let doubleBarrierEntersAndLeavesTogether = check(
        "double barrier: enter when N arrived, leave when all left", clients: 3
    ) { ctx in
        let prefix = try ctx.key("double")
        let entered = Locked(0)
        let left = Locked(0)
        let enteredSignal = AsyncStream<Void>.makeStream()
        let leftSignal = AsyncStream<Void>.makeStream()
        let sessions = try await (0..<3).asyncMap { index in
            try await ctx.clients[index].makeSession(ttl: ctx.sessionTTL * 10)
        }
        let barriers = (0..<3).map {
            DoubleBarrier(prefix, memberCount: 3, session: sessions[$0], store: ctx.clients[$0], id: "member\($0)")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<2 {
                group.addTask {
                    try await barriers[index].enter()
                    entered.withLock { $0 += 1 }
                    enteredSignal.continuation.yield()
                }
            }
            try await waitForChildren(ctx.store, prefix, count: 2)
            try await Task.sleep(for: .milliseconds(200))
            try expectEqual(entered.withLock { $0 }, 0, "entered before the third arrived")
            try await barriers[2].enter()
            try await awaitCount(enteredSignal.stream, 2, "all enter")
            try await group.waitForAll()
        }
        try expectEqual(entered.withLock { $0 }, 2, "the first two entered")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<2 {
                group.addTask {
                    try await barriers[index].leave()
                    left.withLock { $0 += 1 }
                    leftSignal.continuation.yield()
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            try expectEqual(left.withLock { $0 }, 0, "left before the third left")
            try await barriers[2].leave()
            try await awaitCount(leftSignal.stream, 2, "all leave")
            try await group.waitForAll()
        }
        try expectEqual(left.withLock { $0 }, 2, "the first two left")
        try expectEqual(try await ctx.store.list(prefix).count, 0, "nothing left under the barrier")
        for session in sessions { try await session.close() }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
