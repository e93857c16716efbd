import Coordination
import CoordinationCore
import Synchronization

/// The fault suite: the safety contract (at most one holder; a holder learns of its loss first; the
/// line is never shorter than it is; no orphans) under operator actions, stray keys and lost
/// replies, against a backend's real server. Pauses of a whole process are in
/// `FaultConformance.pausedHolder`, which runs the holder in a peer process.
public enum FaultConformance {
    static let suite = "faults"

    public static let checks: [ConformanceCheck] = [
        operatorDeletesAWaiter, operatorDeletesTheHolder, nestedKeysUnderALock, nestedKeysUnderAnElection,
        lostJoinReplyLeavesNoOrphan, lostSemaphoreJoinReplyLeavesNoOrphan, lostReleaseReplyIsARelease,
        unconfirmedReleaseEndsTheSession, lostProclaimReplyKeepsLeadership, failedWatchIsNoLoss,
        deletedRegistrationIsRestored, cancelledJoinsLeaveNoContender,
    ]

    static func check(
        _ name: String,
        clients: Int = 1,
        _ body: @escaping @Sendable (ConformanceContext) async throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck(suite: suite, name, clients: clients, body: body)
    }

    /// Waits until the line under `prefix` has `count` contenders, as the store counts them.
    static func waitForLine(_ store: any KeyValueStore, _ prefix: Key, count: Int) async throws {
        try await RecipeConformance.waitForLine(store, prefix, count: count)
    }

    // MARK: Cancellation

    /// A waiter cancelled while it joins must leave nothing in line: the store runs the creation to
    /// its end (its request, once sent, could otherwise land after the waiter's cleanup looked for
    /// it) and the waiter then removes what it got. Cancelled at a different point each round:
    /// before the join starts, while the create is in flight, or while it waits.
    static let cancelledJoinsLeaveNoContender = check(
        "lock: waiters cancelled while joining leave no contender behind"
    ) { ctx in
        let name = try ctx.key("cancelled-joins")
        let store = ctx.store
        let holderSession = try await store.makeSession(ttl: ctx.sessionTTL * 10)
        let holder = try await Lock(name, session: holderSession, store: store).acquire()
        let session = try await store.makeSession(ttl: ctx.sessionTTL * 10)
        for round in 0..<40 {
            let waiter = Task { try await Lock(name, session: session, store: store).acquire() }
            if round % 4 != 0 { try await Task.sleep(for: .microseconds(250 * (round % 8))) }
            waiter.cancel()
            let result = try await withDeadline(.seconds(20), "round \(round): the cancelled waiter returns") {
                await waiter.result
            }
            switch result {
            case .success:
                throw ConformanceFailure("round \(round): a waiter was granted while the lock was held")
            case .failure(let error):
                // A contender left over from an earlier round would show here as `keyExists`.
                try expectEqual((error as? CoordinationError)?.code, .cancelled, "round \(round): \(error)")
            }
            // Give a request that is still on its way the time to land.
            try await Task.sleep(for: .milliseconds(20))
            let line = try await store.line.contenders(in: name)
            try expect(
                !line.contains { $0.session == session.id },
                "round \(round): the cancelled waiter's contender stayed in line: \(line.map(\.key))")
        }
        try await holder.release()
        try await session.close()
        try await holderSession.close()
    }

    // MARK: Operator actions

    static let operatorDeletesAWaiter = check(
        "lock: a waiter whose key an operator deleted is not granted; the one behind it is, alone", clients: 3
    ) { ctx in
        let name = try ctx.key("deleted-waiter")
        let ttl = ctx.sessionTTL * 10
        let sessions = [
            try await ctx.clients[0].makeSession(ttl: ttl), try await ctx.clients[1].makeSession(ttl: ttl),
            try await ctx.clients[2].makeSession(ttl: ttl),
        ]
        let held = try await Lock(name, session: sessions[0], store: ctx.clients[0]).acquire()
        let second = Task { try await Lock(name, session: sessions[1], store: ctx.clients[1]).acquire() }
        try await waitForLine(ctx.store, name, count: 2)
        let third = Task { try await Lock(name, session: sessions[2], store: ctx.clients[2]).acquire() }
        try await waitForLine(ctx.store, name, count: 3)
        let line = try await ctx.store.line.contenders(in: name)
        try expectEqual(line[1].session, sessions[1].id, "the second in line")
        // The operator (`etcdctl del`, `zkCli delete`, `consul kv delete`) removes the second's key.
        try await ctx.store.delete(line[1].key)
        try await waitForLine(ctx.store, name, count: 2)
        // Let the third see its predecessor go and start waiting on the holder.
        try await Task.sleep(for: .milliseconds(500))
        try await held.release()
        let secondResult = try await withDeadline(.seconds(20), "the second waiter returns") { await second.result }
        let thirdResult = try await withDeadline(.seconds(20), "the third waiter returns") { await third.result }
        let granted = [secondResult, thirdResult].compactMap { try? $0.get() }
        for grant in granted { try? await grant.release() }
        try expectEqual(granted.count, 1, "holders after the release (second: \(secondResult), third: \(thirdResult))")
        try expect((try? thirdResult.get()) != nil, "the waiter behind the deleted one is granted")
        if case .failure(let error) = secondResult {
            try expectEqual((error as? CoordinationError)?.code, .lockLost, "the deleted waiter's error")
        }
        for session in sessions { try await session.close() }
    }

    /// The holder is told by `lost()`; the release it then makes (as `withLock` does) says
    /// `notHolder` and frees whatever else its session held for the lock (Consul's `.lock` key), so
    /// the next waiter is granted.
    static let operatorDeletesTheHolder = check(
        "lock: a holder whose key an operator deleted is told so; once it lets go the next waiter is granted",
        clients: 2
    ) { ctx in
        let name = try ctx.key("deleted-holder")
        let first = try await ctx.clients[0].makeSession(ttl: ctx.sessionTTL * 10)
        let second = try await ctx.clients[1].makeSession(ttl: ctx.sessionTTL * 10)
        let held = try await Lock(name, session: first, store: ctx.clients[0]).acquire()
        let waiter = Task { try await Lock(name, session: second, store: ctx.clients[1]).acquire() }
        try await waitForLine(ctx.store, name, count: 2)
        try await ctx.store.delete(held.key)
        let reason = try await withDeadline(.seconds(20), "the holder's lost()") { await held.lost() }
        try expectEqual(reason?.code, .lockLost, "the holder's loss")
        try await expectError(.notHolder) { try await held.release() }
        let next = try await withDeadline(.seconds(20), "the waiter is granted") { try await waiter.value }
        try await next.release()
        try await first.close()
        try await second.close()
    }

    static let deletedRegistrationIsRestored = check(
        "registration: an instance whose key someone deleted is registered again on its session", clients: 2
    ) { ctx in
        let base = try ctx.key("services")
        let registration = ServiceRegistration(
            try ServiceInstance(name: "api", id: "api-1", address: "127.0.0.1", port: 8080),
            base: base, store: ctx.clients[0], sessionTTL: ctx.sessionTTL * 5)
        let key = try base.appending("api/api-1")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await registration.run() }
            defer { group.cancelAll() }
            try await waitUntilRegistered(registration)
            let session = registration.currentSession
            guard let first = try await ctx.clients[1].get(key) else {
                throw ConformanceFailure("the registration's key is missing")
            }
            try await ctx.clients[1].delete(key)  // an operator, or another client by mistake
            try await withDeadline(.seconds(15), "the instance registered again") {
                while true {
                    if let again = try await ctx.clients[1].get(key), again.createRevision != first.createRevision {
                        return
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try expect(registration.currentSession === session, "registered again on the same, live session")
        }
    }

    // MARK: Keys nested below a recipe's name

    static let nestedKeysUnderALock = check(
        "lock: keys nested below its name neither let a newcomer in nor block the line", clients: 2
    ) { ctx in
        let name = try ctx.key("nested-lock")
        try await ctx.store.put(try name.appending("early/x"), Array("stray".utf8))
        let ttl = ctx.sessionTTL * 10
        let holderSession = try await ctx.clients[0].makeSession(ttl: ttl)
        let newcomerSession = try await ctx.clients[1].makeSession(ttl: ttl)
        let waiterSession = try await ctx.clients[1].makeSession(ttl: ttl)
        let held = try await Lock(name, session: holderSession, store: ctx.clients[0]).acquire()
        try await ctx.store.put(try name.appending("late/y"), Array("stray".utf8))
        let newcomer = try await Lock(name, session: newcomerSession, store: ctx.clients[1]).tryAcquire()
        if let newcomer { try await newcomer.release() }
        try expect(newcomer == nil, "a newcomer was granted the lock while it was held (a nested key hid the holder)")
        let waiter = Task { try await Lock(name, session: waiterSession, store: ctx.clients[1]).acquire() }
        try await waitForLine(ctx.store, name, count: 2)
        try await held.release()
        let next = try await withDeadline(.seconds(20), "the waiter is granted past the nested keys") {
            try await waiter.value
        }
        try await next.release()
        for session in [holderSession, newcomerSession, waiterSession] { try await session.close() }
    }

    static let nestedKeysUnderAnElection = check(
        "election: keys nested below its name are no candidates and block nobody", clients: 2
    ) { ctx in
        let name = try ctx.key("nested-election")
        try await ctx.store.put(try name.appending("early/x"), Array("stray".utf8))
        let ttl = ctx.sessionTTL * 10
        let first = try await ctx.clients[0].makeSession(ttl: ttl)
        let second = try await ctx.clients[1].makeSession(ttl: ttl)
        let election = Election(name, store: ctx.clients[0])
        let leading = try await election.campaign(value: Array("one".utf8), session: first)
        try await ctx.store.put(try name.appending("late/y"), Array("stray".utf8))
        let challenger = Task {
            try await Election(name, store: ctx.clients[1]).campaign(value: Array("two".utf8), session: second)
        }
        try await waitForLine(ctx.store, name, count: 2)
        try await Task.sleep(for: .milliseconds(500))
        try expectEqual(try await election.leader()?.key, leading.key, "leader() while the first leads")
        var observed = try await election.observe().makeAsyncIterator()
        let seen = try await observed.next()
        try expectEqual(seen??.key, leading.key, "observe()'s first leader")
        if case .success(let challenged) = await Self.resultIfFinished(challenger) {
            try? await challenged.resign()
            throw ConformanceFailure("a second candidate was elected while the first led (a nested key hid it)")
        }
        try await leading.resign()
        let next = try await withDeadline(.seconds(20), "the second candidate is elected past the nested keys") {
            try await challenger.value
        }
        try expectEqual(try await election.leader()?.key, next.key, "leader() after the hand-over")
        try await next.resign()
        try await first.close()
        try await second.close()
    }

    /// The task's result if it has finished within a moment, else `nil` (the task keeps running).
    static func resultIfFinished<T: Sendable>(_ task: Task<T, any Error>) async -> Result<T, any Error>? {
        let done = Locked<Result<T, any Error>?>(nil)
        let probe = Task {
            let result = await task.result
            done.withLock { $0 = result }
        }
        try? await Task.sleep(for: .milliseconds(200))
        probe.cancel()
        return done.withLock { $0 }
    }

    // MARK: Lost replies

    static let lostJoinReplyLeavesNoOrphan = check(
        "lock and election: a join whose reply was lost leaves no contender behind"
    ) { ctx in
        let faulty = LostReplyStore(ctx.store)
        for (index, campaign) in [false, true].enumerated() {
            let name = try ctx.key("lost-join-\(index)")
            let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
            faulty.arm("joinLine", .loseReply)
            try await expectError(.timeout) {
                if campaign {
                    _ = try await Election(name, store: faulty).campaign(value: [], session: session)
                } else {
                    _ = try await Lock(name, session: session, store: faulty).acquire()
                }
            }
            try await waitForLine(ctx.store, name, count: 0)
            let other = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
            guard let grant = try await Lock(name, session: other, store: ctx.store).tryAcquire() else {
                throw ConformanceFailure("the line is blocked after a join whose reply was lost")
            }
            try await grant.release()
            if session.isActive {
                // The same session can join again: nothing of its earlier attempt is in the way.
                try await Lock(name, session: session, store: ctx.store).acquire().release()
                try await session.close()
            }
            try await other.close()
        }
    }

    static let lostSemaphoreJoinReplyLeavesNoOrphan = check(
        "semaphore: a join whose reply was lost leaves no contender behind"
    ) { ctx in
        let faulty = LostReplyStore(ctx.store)
        let name = try ctx.key("lost-permit")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        faulty.arm("joinLine", .loseReply)
        try await expectError(.timeout) {
            try await Semaphore(name, permits: 1, session: session, store: faulty).acquire()
        }
        try await waitForLine(ctx.store, name, count: 0)
        try await session.close()
    }

    static let lostReleaseReplyIsARelease = check(
        "lock: a release whose reply was lost is confirmed, not reported as a failure"
    ) { ctx in
        let faulty = LostReplyStore(ctx.store)
        let name = try ctx.key("lost-release")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let grant = try await Lock(name, session: session, store: faulty).acquire()
        faulty.arm("atomicDelete", .loseReply)
        try await grant.release()
        try await waitForLine(ctx.store, name, count: 0)
        try expect(session.isActive, "the session survives a release that went through")
        try await session.close()
    }

    static let unconfirmedReleaseEndsTheSession = check(
        "lock: a release that cannot be confirmed ends the session, so the lock is not held by nobody"
    ) { ctx in
        let faulty = LostReplyStore(ctx.store)
        let name = try ctx.key("unconfirmed-release")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        faulty.arm("atomicDelete", .refuse, times: 100)
        try await Lock(name, session: session, store: faulty).withLock { _ in }
        try await waitForLine(ctx.store, name, count: 0)
        try expect(!session.isActive, "the session was ended")
        let other = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        guard let next = try await Lock(name, session: other, store: ctx.store).tryAcquire() else {
            throw ConformanceFailure("the lock is still held after its holder's work ended")
        }
        try await next.release()
        try await other.close()
    }

    static let lostProclaimReplyKeepsLeadership = check(
        "election: after a proclaim whose reply was lost, the leader can still proclaim and resign"
    ) { ctx in
        let faulty = LostReplyStore(ctx.store)
        let name = try ctx.key("lost-proclaim")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let election = Election(name, store: faulty)
        let leadership = try await election.campaign(value: Array("a".utf8), session: session)
        faulty.arm("atomicPut", .loseReply)
        try await expectError(.timeout) { try await leadership.proclaim(Array("b".utf8)) }
        try await leadership.proclaim(Array("c".utf8))
        try expectEqual(try await election.leader()?.stringValue, "c", "the leader's value")
        try await leadership.resign()
        try expect(try await election.leader() == nil, "nobody leads after the resignation")
        try await session.close()
    }

    static let failedWatchIsNoLoss = check(
        "lock: a watch that fails while the session lives is no loss of the grant"
    ) { ctx in
        let faulty = LostReplyStore(ctx.store)
        let name = try ctx.key("failed-watch")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 10)
        let grant = try await Lock(name, session: session, store: faulty).acquire()
        faulty.arm("waitUntilGone", .refuse)
        let reported = Locked<CoordinationError??>(nil)
        let watcher = Task {
            let reason = await grant.lost()
            reported.withLock { $0 = .some(reason) }
        }
        try await Task.sleep(for: .milliseconds(1500))
        if let reason = reported.withLock({ $0 }) {
            throw ConformanceFailure("lost() reported \(String(describing: reason)) while the grant held")
        }
        try await grant.release()
        _ = try await withDeadline(.seconds(20), "lost() after the release") { await watcher.value }
        try expectEqual(reported.withLock { $0 }??.code, .lockLost, "lost() after the release")
        try await session.close()
    }
}
