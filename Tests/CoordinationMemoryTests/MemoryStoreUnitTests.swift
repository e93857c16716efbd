import CoordinationCore
import CoordinationMemory
import Testing

/// Behaviour of the in-memory store that a real-server suite cannot check deterministically: TTL
/// expiry on a manual clock, exact revision numbering, close, limits and registration.
///
/// Nothing here asserts on wall-clock time. Time is the ``ManualMemoryClock``; where a test must
/// wait for the store's run loop it waits for an event (a session state, a watch event), and the
/// suite's time limit turns a hang into a failure.
@Suite("MemoryStore unit", .timeLimit(.minutes(1)))
struct MemoryStoreUnitTests {
    static func makeStore(clock: ManualMemoryClock = ManualMemoryClock(), maxValueSize: Int = 512 * 1024) -> MemoryStore
    {
        MemoryStore(configuration: .init(maxValueSize: maxValueSize, clock: clock))
    }

    /// The next event of a watch, failing the test if the watch ended or failed instead.
    static func next(
        _ events: inout WatchStream.AsyncIterator,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> WatchEvent {
        let event = try await events.next()
        return try #require(event, "the watch finished silently", sourceLocation: sourceLocation)
    }

    /// The snapshot a watch starts with.
    static func snapshot(
        _ events: inout WatchStream.AsyncIterator,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> WatchSnapshot {
        let event = try await next(&events, sourceLocation: sourceLocation)
        guard case .snapshot(let snapshot) = event else {
            Issue.record("expected a snapshot first, got \(event)", sourceLocation: sourceLocation)
            throw CoordinationError(.protocolError, "no snapshot")
        }
        return snapshot
    }

    /// The next event, which must be a deletion.
    static func deletion(
        _ events: inout WatchStream.AsyncIterator,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Deletion {
        let event = try await next(&events, sourceLocation: sourceLocation)
        guard case .deleted(let deletion) = event else {
            Issue.record("expected a deletion, got \(event)", sourceLocation: sourceLocation)
            throw CoordinationError(.protocolError, "no deletion")
        }
        return deletion
    }

    /// The next event, which must be a put.
    static func put(
        _ events: inout WatchStream.AsyncIterator,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Entry {
        let event = try await next(&events, sourceLocation: sourceLocation)
        guard case .put(let entry) = event else {
            Issue.record("expected a put, got \(event)", sourceLocation: sourceLocation)
            throw CoordinationError(.protocolError, "no put")
        }
        return entry
    }

    // MARK: - Session expiry on the manual clock

    @Test("an abandoned session expires exactly when the clock passes its TTL, and its keys go with reason expired")
    func abandonedSessionExpiresAtTTL() async throws {
        let clock = ManualMemoryClock()
        try await Self.makeStore(clock: clock).withRunning { store in
            let ttl = Duration.seconds(10)
            let session = try await store.makeSession(ttl: ttl)
            let key = try Key("services/web/1")
            let other = try Key("services/web/2")
            try await store.put(key, Array("a".utf8), options: .boundTo(session))
            try await store.put(other, Array("b".utf8))
            let written = try #require(try await store.get(key))
            #expect(written.session == session.id)

            do {
                var events = try await store.watch(key).makeAsyncIterator()
                #expect(try await Self.snapshot(&events).entries == [written])
                var states = session.states().makeAsyncIterator()
                #expect(await states.next() == .alive)

                session.abandon()
                clock.advance(by: ttl - .milliseconds(1))
                // A store call expires whatever is due at the current time, so this is a
                // deterministic check that the session is not due yet.
                #expect(try await store.exists(key))
                #expect(session.state == .alive)
                #expect(session.isActive)

                clock.advance(by: .milliseconds(1))
                // No store call from here on: the run loop alone must notice the deadline.
                #expect(await session.waitUntilEnded() == .expired)
                #expect(await states.next() == .expired)
                #expect(await states.next() == nil)

                let deletion = try await Self.deletion(&events)
                #expect(deletion.key == key)
                #expect(deletion.reason == .expired)
                #expect(deletion.revision > written.modifyRevision)
            }  // the watch ends before the store closes (see the close tests below)

            #expect(try await store.get(key) == nil)
            #expect(try await store.exists(other), "a key not bound to the session stays")
            #expect(!session.isActive)
            #expect(throws: CoordinationError.sessionExpired) { try session.checkActive() }
            await #expect(throws: CoordinationError.sessionExpired) {
                try await store.put(key, [1], options: .boundTo(session))
            }
        }
    }

    @Test("a tree watch sees every key of an expired session go at one revision, reason expired")
    func expiryRemovesAllBoundKeysAtOneRevision() async throws {
        let clock = ManualMemoryClock()
        try await Self.makeStore(clock: clock).withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(3))
            let prefix = try Key("bound")
            let keys = try ["a", "b", "c/d"].map { try prefix.appending($0) }
            for key in keys { try await store.put(key, [0], options: .boundTo(session)) }
            try await store.put(try prefix.appending("free"), [0])

            do {
                var events = try await store.watchTree(prefix).makeAsyncIterator()
                let snapshot = try await Self.snapshot(&events)
                #expect(snapshot.entries.count == 4)

                session.abandon()
                clock.advance(by: .seconds(3))
                #expect(await session.waitUntilEnded() == .expired)

                var deletions: [Deletion] = []
                for _ in keys { deletions.append(try await Self.deletion(&events)) }
                #expect(Set(deletions.map(\.key)) == Set(keys))
                #expect(deletions.allSatisfy { $0.reason == .expired })
                #expect(Set(deletions.map(\.revision)) == [Revision(snapshot.revision.value + 1)])
            }
            #expect(try await store.list(prefix).map(\.key) == [try prefix.appending("free")])
        }
    }

    @Test("abandoned sessions expire in deadline order, including one abandoned later with a shorter TTL")
    func sessionsExpireInDeadlineOrder() async throws {
        let clock = ManualMemoryClock()
        try await Self.makeStore(clock: clock).withRunning { store in
            let long = try await store.makeSession(ttl: .seconds(60))
            let short = try await store.makeSession(ttl: .seconds(5))
            long.abandon()  // the run loop now sleeps until t = 60 s
            clock.advance(by: .seconds(1))
            short.abandon()  // deadline t = 6 s: the run loop must wake up and sleep less

            clock.advance(by: .seconds(5))
            #expect(await short.waitUntilEnded() == .expired)
            #expect(long.state == .alive)

            clock.advance(by: .seconds(53))
            #expect(try await store.makeSession(ttl: .seconds(1)).isActive)
            #expect(long.state == .alive, "t = 59 s, one second before its deadline")

            clock.advance(by: .seconds(1))
            #expect(await long.waitUntilEnded() == .expired)
        }
    }

    @Test("abandoning twice does not push the deadline back")
    func abandonTwiceKeepsFirstDeadline() async throws {
        let clock = ManualMemoryClock()
        try await Self.makeStore(clock: clock).withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            session.abandon()
            clock.advance(by: .seconds(5))
            session.abandon()
            clock.advance(by: .seconds(5))
            #expect(await session.waitUntilEnded() == .expired)
        }
    }

    @Test("a session that is not abandoned never expires, however far the clock moves")
    func keptSessionNeverExpires() async throws {
        let clock = ManualMemoryClock()
        try await Self.makeStore(clock: clock).withRunning { store in
            let session = try await store.makeSession(ttl: .milliseconds(10))
            let key = try Key("kept/alive")
            try await store.put(key, [1], options: .boundTo(session))

            // A probe session abandoned at the same time proves the run loop has processed the
            // clock's advance by the time it expires.
            let probe = try await store.makeSession(ttl: .milliseconds(10))
            probe.abandon()
            for _ in 0..<10 { clock.advance(by: .seconds(365 * 24 * 3600)) }
            #expect(await probe.waitUntilEnded() == .expired)

            #expect(session.state == .alive)
            #expect(try await store.exists(key))
            #expect(session.state == .alive)

            try await session.close()
            #expect(session.state == .closed)
            #expect(try await store.exists(key) == false)
        }
    }

    @Test("revoking a session expires it at once, without the clock moving")
    func revokeExpiresImmediately() async throws {
        let clock = ManualMemoryClock()
        try await Self.makeStore(clock: clock).withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let key = try Key("revoked")
            try await store.put(key, [1], options: .boundTo(session))
            do {
                var events = try await store.watch(key).makeAsyncIterator()
                _ = try await Self.snapshot(&events)

                try await store.revokeSession(session.id)
                #expect(session.state == .expired)
                let deletion = try await Self.deletion(&events)
                #expect(deletion.reason == .expired)
            }
            #expect(try await store.exists(key) == false)
        }
    }

    @Test("closing a session removes its keys with reason deleted, not expired")
    func closedSessionKeysAreDeleted() async throws {
        try await Self.makeStore().withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let key = try Key("closed")
            try await store.put(key, [1], options: .boundTo(session))
            do {
                var events = try await store.watch(key).makeAsyncIterator()
                _ = try await Self.snapshot(&events)

                try await session.close()
                #expect(session.state == .closed)
                let deletion = try await Self.deletion(&events)
                #expect(deletion.reason == .deleted)
            }
            try await session.close()  // idempotent
            #expect(session.state == .closed)
        }
    }

    // MARK: - Revisions

    @Test("the revision grows by one with every write, and only with writes")
    func revisionsIncreaseWithEveryWrite() async throws {
        try await Self.makeStore().withRunning { store in
            let prefix = try Key("rev")
            let a = try prefix.appending("a")
            let b = try prefix.appending("b")
            let c = try prefix.appending("c")
            var events = try await store.watchTree(prefix).makeAsyncIterator()
            let start = try await Self.snapshot(&events).revision
            var expected = start.value

            func expectNext(_ what: Comment, sourceLocation: SourceLocation = #_sourceLocation) async throws
                -> WatchEvent
            {
                expected += 1
                let event = try await Self.next(&events, sourceLocation: sourceLocation)
                #expect(event.revision == Revision(expected), what, sourceLocation: sourceLocation)
                return event
            }

            try await store.put(a, [1])
            let created = try await expectNext("put creates")
            try await store.put(a, [2])
            let updated = try await expectNext("put updates")
            if case .put(let first) = created, case .put(let second) = updated {
                #expect(second.createRevision == first.createRevision)
                #expect(second.modifyRevision > first.modifyRevision)
            } else {
                Issue.record("expected two puts, got \(created) and \(updated)")
            }

            let cEntry = try await store.atomicPut(c, [1], condition: .absent)
            #expect(cEntry.modifyRevision == Revision(expected + 1))
            _ = try await expectNext("create-if-absent")

            // Failed conditional writes and deletes of missing keys change nothing.
            await #expect(throws: CoordinationError.keyExists) { try await store.atomicPut(c, [2], condition: .absent) }
            await #expect(throws: CoordinationError.revisionMismatch) {
                try await store.atomicPut(c, [2], condition: .revision(Revision(cEntry.modifyRevision.value + 100)))
            }
            await #expect(throws: CoordinationError.keyNotFound) {
                try await store.atomicPut(b, [2], condition: .revision(cEntry.modifyRevision))
            }
            await #expect(throws: CoordinationError.revisionMismatch) {
                try await store.atomicDelete(c, revision: Revision(1))
            }
            await #expect(throws: CoordinationError.keyNotFound) {
                try await store.atomicDelete(b, revision: Revision(1))
            }
            try await store.delete(b)

            let cUpdated = try await store.atomicPut(c, [3], condition: .revision(cEntry.modifyRevision))
            #expect(cUpdated.modifyRevision == Revision(expected + 1))
            #expect(cUpdated.createRevision == cEntry.createRevision)
            _ = try await expectNext("compare-and-set")

            try await store.atomicDelete(c, revision: cUpdated.modifyRevision)
            _ = try await expectNext("compare-and-delete")
            try await store.delete(a)
            _ = try await expectNext("delete")

            let session = try await store.makeSession(ttl: .seconds(10))
            _ = try await store.line.join(prefix, role: .lock, value: [], session: session)
            _ = try await expectNext("contender")
            try await session.close()
            _ = try await expectNext("session close")

            try await store.put(b, [1])
            _ = try await expectNext("put after everything")
            #expect(try await store.get(b)?.modifyRevision == Revision(expected))
        }
    }

    @Test("deleteTree removes the prefix and its subtree at one revision, and nothing beside it")
    func deleteTreeUsesOneRevision() async throws {
        try await Self.makeStore().withRunning { store in
            let root = try Key("dt")
            let tree = try root.appending("t")
            let doomed = try ["t", "t/a", "t/b", "t/b/c"].map { try root.appending($0) }
            let survivors = try ["tx", "u"].map { try root.appending($0) }
            for key in doomed + survivors { try await store.put(key, [1]) }

            var events = try await store.watchTree(root).makeAsyncIterator()
            let before = try await Self.snapshot(&events).revision

            try await store.deleteTree(tree)
            var deletions: [Deletion] = []
            for _ in doomed { deletions.append(try await Self.deletion(&events)) }
            #expect(Set(deletions.map(\.key)) == Set(doomed))
            #expect(deletions.map(\.revision) == Array(repeating: Revision(before.value + 1), count: doomed.count))
            #expect(deletions.allSatisfy { $0.reason == .deleted })
            #expect(try await store.list(root).map(\.key) == survivors)

            // An empty tree changes nothing; the next write takes the next revision.
            try await store.deleteTree(tree)
            try await store.put(tree, [2])
            #expect(try await Self.put(&events).modifyRevision == Revision(before.value + 2))
        }
    }

    // MARK: - Close

    // Closing with watches open once crashed (the watches were failed under the state lock, and
    // their termination handlers take that lock): these two guard against that returning.

    @Test("close fails open watches with storeClosed and later calls throw storeClosed")
    func closeFailsWatchesAndCalls() async throws {
        try await Self.closeFailsWatchesAndCallsScenario()
    }

    static func closeFailsWatchesAndCallsScenario() async throws {
        let store = Self.makeStore()
        try await store.withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let key = try Key("c/k")
            try await store.put(key, [1])
            var keyEvents = try await store.watch(key).makeAsyncIterator()
            var treeEvents = try await store.watchTree(try Key("c")).makeAsyncIterator()
            _ = try await Self.snapshot(&keyEvents)
            _ = try await Self.snapshot(&treeEvents)

            await store.close()

            for var events in [keyEvents, treeEvents] {
                let error = await #expect(throws: CoordinationError.self) {
                    while try await events.next() != nil {}
                }
                #expect(error?.code == .storeClosed)
                #expect(error?.backend == "memory")
            }
            #expect(session.state == .closed)

            await #expect(throws: CoordinationError.storeClosed) { try await store.get(key) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.exists(key) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.put(key, [2]) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.delete(key) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.list(try Key("c")) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.deleteTree(try Key("c")) }
            await #expect(throws: CoordinationError.storeClosed) {
                try await store.atomicPut(key, [2], condition: .absent)
            }
            await #expect(throws: CoordinationError.storeClosed) {
                try await store.atomicDelete(key, revision: Revision(1))
            }
            await #expect(throws: CoordinationError.storeClosed) { try await store.watch(key) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.watchTree(key) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.makeSession(ttl: .seconds(10)) }
            await #expect(throws: CoordinationError.storeClosed) { try await store.line.contenders(in: key) }

            await store.close()  // idempotent
        }
    }

    @Test("run() returns once the store is closed")
    func runReturnsAfterClose() async throws {
        let store = Self.makeStore()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            let session = try await store.makeSession(ttl: .seconds(10))
            session.abandon()  // give the run loop a deadline to sleep on
            await store.close()
            try await group.next()
        }
    }

    @Test("revisions keep growing through close: keys removed by close carry a new revision")
    func closeDeletionsTakeNewRevision() async throws {
        try await Self.closeDeletionsTakeNewRevisionScenario()
    }

    static func closeDeletionsTakeNewRevisionScenario() async throws {
        let store = Self.makeStore()
        try await store.withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let key = try Key("closing/k")
            try await store.put(key, [1], options: .boundTo(session))
            let written = try #require(try await store.get(key))
            var events = try await store.watch(key).makeAsyncIterator()
            _ = try await Self.snapshot(&events)

            await store.close()
            // The watch may or may not report the removal before it fails; if it does, the removal
            // is a change like any other and must not reuse the last write's revision.
            do throws(CoordinationError) {
                while let event = try await events.next() {
                    #expect(event.revision > written.modifyRevision, "\(event)")
                }
                Issue.record("the watch finished silently")
            } catch {
                #expect(error.code == .storeClosed)
            }
        }
    }

    // MARK: - Limits

    @Test("a value of exactly maxValueSize is accepted; one byte more is valueTooLarge")
    func maxValueSize() async throws {
        let limit = 64
        try await Self.makeStore(maxValueSize: limit).withRunning { store in
            #expect(store.limits.maxValueSize == limit)
            let key = try Key("big")
            try await store.put(key, Array(repeating: 7, count: limit))
            #expect(try await store.get(key)?.value.count == limit)

            let error = try #require(
                await #expect(throws: CoordinationError.self) {
                    try await store.put(key, Array(repeating: 8, count: limit + 1))
                })
            #expect(error.code == .valueTooLarge)
            #expect(error.key == "big")
            #expect(error.backend == "memory")
            #expect(error.message.contains("\(limit)"))
            #expect(
                try await store.get(key)?.value == Array(repeating: 7, count: limit),
                "the rejected write changed nothing")

            let other = try Key("big2")
            _ = try await store.atomicPut(other, Array(repeating: 1, count: limit), condition: .absent)
            await #expect(throws: CoordinationError.valueTooLarge) {
                try await store.atomicPut(try Key("big3"), Array(repeating: 1, count: limit + 1), condition: .absent)
            }
            #expect(try await store.exists(try Key("big3")) == false)

            let session = try await store.makeSession(ttl: .seconds(10))
            await #expect(throws: CoordinationError.valueTooLarge) {
                try await store.line.join(
                    try Key("q"), role: .lock, value: Array(repeating: 1, count: limit + 1), session: session)
            }
        }
    }

    @Test("session TTLs outside the limits are invalidArgument")
    func sessionTTLLimits() async throws {
        try await Self.makeStore().withRunning { store in
            await #expect(throws: CoordinationError.invalidArgument) {
                try await store.makeSession(ttl: .milliseconds(1))
            }
            await #expect(throws: CoordinationError.invalidArgument) {
                try await store.makeSession(ttl: .seconds(8 * 24 * 3600))
            }
            let limits = store.limits
            let shortest = try await store.makeSession(ttl: limits.minimumSessionTTL)
            let longest = try await store.makeSession(ttl: limits.maximumSessionTTL)
            #expect(shortest.isActive)
            #expect(longest.isActive)
        }
    }

    // MARK: - Registration

    @Test("register(in:) opens memory://")
    func registerPlain() async throws {
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        #expect(registry.schemes == ["memory"])

        let store = try registry.makeStore("memory://")
        #expect(store is MemoryStore)
        #expect(store.storeDescription.backend == "memory")
        #expect(store.limits.maxValueSize == 512 * 1024)
        try await store.put(try Key("hello"), Array("world".utf8))
        #expect(try await store.getString(try Key("hello")) == "world")
        await store.close()
    }

    @Test("register(in:) opens memory://name?maxValueSize=10")
    func registerNamedWithLimit() async throws {
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)

        let store = try registry.makeStore("memory://name?maxValueSize=10")
        #expect(store.storeDescription.backend == "memory")
        #expect(store.storeDescription.endpoint == "name")
        #expect(store.limits.maxValueSize == 10)
        try await store.put(try Key("k"), Array(repeating: 0, count: 10))
        let error = try #require(
            await #expect(throws: CoordinationError.self) {
                try await store.put(try Key("k"), Array(repeating: 0, count: 11))
            })
        #expect(error.code == .valueTooLarge)
        #expect(error.endpoint == "name")
        await store.close()
    }

    @Test("register(in:) rejects a maxValueSize that is not a positive number", arguments: ["abc", "0", "-5", ""])
    func registerRejectsBadLimit(_ value: String) throws {
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        #expect(throws: CoordinationError(.invalidConnectionString, "")) {
            try registry.makeStore("memory://?maxValueSize=\(value)")
        }
    }

    @Test("two unnamed memory stores are distinct stores")
    func unnamedStoresAreDistinct() async throws {
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        let first = try registry.makeStore("memory://")
        let second = try registry.makeStore("memory://")
        #expect(first.storeDescription != second.storeDescription)
        try await first.put(try Key("only-in-first"), [1])
        #expect(try await second.exists(try Key("only-in-first")) == false)
        await first.close()
        await second.close()
    }

    @Test(
        "a watch whose consumer stops reading holds WatchStream.bufferLimit events, then ends with historyLost; the store goes on"
    )
    func slowWatchConsumer() async throws {
        let store = Self.makeStore()
        try await store.withRunning { store in
            let events = try await store.watchTree(try Key("slow"))
            let other = try await store.watchTree(try Key("slow"))
            var otherEvents = other.makeAsyncIterator()
            _ = try await Self.snapshot(&otherEvents)
            // The snapshot is held already: this many puts fill the buffer, and one more overflows.
            for index in 0..<WatchStream.bufferLimit {
                try await store.put(try Key("slow/k\(index % 10)"), Array("\(index)".utf8))
                _ = try await Self.next(&otherEvents)  // a consumer that keeps up is not affected
            }
            var held = 0
            var ending: CoordinationError?
            do {
                for try await _ in events { held += 1 }
            } catch {
                ending = error as? CoordinationError
            }
            #expect(held == WatchStream.bufferLimit, "every event held before the overflow was delivered")
            #expect(ending?.code == .historyLost, "\(String(describing: ending))")
            try await store.put(try Key("slow/after"), Array("x".utf8))
            guard case .put(let entry) = try await Self.next(&otherEvents) else {
                Issue.record("the other watch lost its way")
                return
            }
            #expect(entry.key == (try Key("slow/after")))
        }
    }
}
