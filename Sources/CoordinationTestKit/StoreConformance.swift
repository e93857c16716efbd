import CoordinationCore

/// The store conformance suite: the libkv/valkeyrie shared checks and what they miss.
///
/// Run every check against every backend:
/// ```swift
/// @Test(arguments: StoreConformance.checks)
/// func store(_ check: ConformanceCheck) async throws { try await check.run(on: MyBackend()) }
/// ```
public enum StoreConformance {
    static let suite = "store"

    public static let checks: [ConformanceCheck] = [
        putGetDelete, nestedAndTrailingSlashKeys, missingKeys, overwriteKeepsCreateRevision, binaryAndEmptyValues,
        listIsRecursiveAndExcludesParent, deleteTreeRemovesSubtreeOnly, atomicPutCreate, atomicPutCompareAndSet,
        atomicDeleteCompareAndDelete, watchKeyStartsWithValueThenChanges, watchMissingKeyThenCreateAndDelete,
        watchTreeSnapshotThenChanges, watchHasNoGapUnderConcurrentWrites, sessionExpiryRemovesBoundKeys,
        closingSessionRemovesKeys, revokedSessionIsExpiredForItsOwner, endedSessionCannotBindKeys,
        invalidKeysAreRejected, oversizedValuesAreRejected, invalidSessionTTLIsRejected,
        cancellingAWatchEndsIt, contendersAreOrderedAndSessionBound,
    ]

    static func check(
        _ name: String,
        clients: Int = 1,
        requires: StoreCapabilities = [],
        _ body: @escaping @Sendable (ConformanceContext) async throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck(suite: suite, name, clients: clients, requires: requires, body: body)
    }

    static let putGetDelete = check("put, get, exists and delete") { ctx in
        let store = ctx.store
        let key = try ctx.key("putGetDelete")
        try await store.put(key, "hello".bytes, options: .none)
        let entry = try await store.get(key)
        try expectEqual(entry?.value, "hello".bytes, "value read back")
        try expectEqual(entry?.key, key, "entry key")
        try expect(try await store.exists(key), "exists after put")
        try await store.delete(key)
        try expect(try await store.get(key) == nil, "get after delete is nil")
        try expect(!(try await store.exists(key)), "exists after delete is false")
    }

    static let nestedAndTrailingSlashKeys = check("nested and trailing-slash keys are one key") { ctx in
        let store = ctx.store
        let nested = "\(ctx.root.path)/a/b/c"
        try await store.put(nested + "/", "v".bytes)
        try expectEqual(try await store.get("/" + nested)?.value, "v".bytes, "value under normalised key")
        try expectEqual(try await store.get(nested)?.key.path, nested, "normalised path")
        try await store.delete(nested + "/")
        try expect(try await store.get(nested) == nil, "deleted through the trailing-slash spelling")
    }

    static let missingKeys = check("missing keys: get is nil, delete is not an error") { ctx in
        let key = try ctx.key("never/written")
        try expect(try await ctx.store.get(key) == nil, "get of a missing key is nil")
        try expect(!(try await ctx.store.exists(key)), "exists of a missing key is false")
        try await ctx.store.delete(key)
        try expectEqual(try await ctx.store.list(key).count, 0, "list of a missing prefix")
    }

    static let overwriteKeepsCreateRevision = check("overwrite keeps create revision, bumps modify revision") { ctx in
        let key = try ctx.key("rev")
        try await ctx.store.put(key, "1".bytes)
        let first = try await ctx.store.get(key)
        try await ctx.store.put(key, "2".bytes)
        let second = try await ctx.store.get(key)
        guard let first, let second else { throw ConformanceFailure("entry missing after put") }
        try expectEqual(second.createRevision, first.createRevision, "create revision after overwrite")
        try expect(
            second.modifyRevision > first.modifyRevision,
            "modify revision grows: \(first.modifyRevision) → \(second.modifyRevision)")
        try expect(first.createRevision <= first.modifyRevision, "create ≤ modify")
        try expectEqual(second.value, "2".bytes, "new value")
    }

    static let binaryAndEmptyValues = check("binary and empty values round-trip") { ctx in
        let binary = try ctx.key("binary")
        let empty = try ctx.key("empty")
        let bytes = (0...255).map { UInt8($0) } + [0, 0, 255]
        try await ctx.store.put(binary, bytes)
        try await ctx.store.put(empty, [])
        try expectEqual(try await ctx.store.get(binary)?.value, bytes, "binary value")
        try expectEqual(try await ctx.store.get(empty)?.value, [], "empty value")
        try expect(try await ctx.store.exists(empty), "an empty value still exists")
    }

    static let listIsRecursiveAndExcludesParent = check(
        "list is recursive, sorted, and excludes the parent", requires: .valuesOnInnerNodes
    ) { ctx in
        let store = ctx.store
        let parent = try ctx.key("list")
        try await store.put(parent, "parent".bytes)
        for path in ["list/b", "list/a", "list/a/deep/x", "list/c/y", "listing", "list2/z"] {
            try await store.put(try ctx.key(path), path.bytes)
        }
        let listed = try await store.list(parent).map { String($0.key.relative(to: ctx.root)!) }
        try expectEqual(listed, ["list/a", "list/a/deep/x", "list/b", "list/c/y"], "listed keys")
        let values = try await store.list(parent).map(\.stringValue)
        try expectEqual(values, ["list/a", "list/a/deep/x", "list/b", "list/c/y"], "listed values")
    }

    static let deleteTreeRemovesSubtreeOnly = check(
        "deleteTree removes the prefix and its subtree only", requires: .valuesOnInnerNodes
    ) { ctx in
        let store = ctx.store
        for path in ["tree", "tree/a", "tree/a/b", "tree/c", "treetop", "other/x"] {
            try await store.put(try ctx.key(path), [1])
        }
        try await store.deleteTree(try ctx.key("tree"))
        for path in ["tree", "tree/a", "tree/a/b", "tree/c"] {
            try expect(!(try await store.exists(try ctx.key(path))), "\(path) removed")
        }
        try expect(try await store.exists(try ctx.key("treetop")), "sibling with a shared string prefix kept")
        try expect(try await store.exists(try ctx.key("other/x")), "unrelated key kept")
        try await store.deleteTree(try ctx.key("tree"))  // again: nothing there, not an error
    }

    static let atomicPutCreate = check("atomicPut .absent creates once, then keyExists") { ctx in
        let key = try ctx.key("create")
        let entry = try await ctx.store.atomicPut(key, "first".bytes, condition: .absent)
        try expectEqual(entry.value, "first".bytes, "returned value")
        try expectEqual(entry.createRevision, entry.modifyRevision, "a new key's revisions")
        try await expectError(.keyExists) { try await ctx.store.atomicPut(key, "second".bytes, condition: .absent) }
        try expectEqual(try await ctx.store.get(key)?.value, "first".bytes, "value kept after the failed create")
    }

    static let atomicPutCompareAndSet = check("atomicPut .revision: CAS, mismatch, missing") { ctx in
        let key = try ctx.key("cas")
        let created = try await ctx.store.atomicPut(key, "v1".bytes, condition: .absent)
        let swapped = try await ctx.store.atomicPut(key, "v2".bytes, condition: .revision(created.modifyRevision))
        try expect(swapped.modifyRevision > created.modifyRevision, "CAS bumps the revision")
        try expectEqual(swapped.createRevision, created.createRevision, "CAS keeps the create revision")
        try await expectError(.revisionMismatch) {
            try await ctx.store.atomicPut(key, "stale".bytes, condition: .revision(created.modifyRevision))
        }
        try expectEqual(try await ctx.store.get(key)?.value, "v2".bytes, "value kept after the failed CAS")
        try await expectError(.keyNotFound) {
            try await ctx.store.atomicPut(
                try ctx.key("cas-missing"), "x".bytes, condition: .revision(swapped.modifyRevision))
        }
        try expect(!(try await ctx.store.exists(try ctx.key("cas-missing"))), "failed CAS created nothing")
    }

    static let atomicDeleteCompareAndDelete = check("atomicDelete: mismatch, missing, success") { ctx in
        let key = try ctx.key("cad")
        let created = try await ctx.store.atomicPut(key, "v1".bytes, condition: .absent)
        let updated = try await ctx.store.atomicPut(key, "v2".bytes, condition: .revision(created.modifyRevision))
        try await expectError(.revisionMismatch) {
            try await ctx.store.atomicDelete(key, revision: created.modifyRevision)
        }
        try expect(try await ctx.store.exists(key), "kept after a mismatched delete")
        try await ctx.store.atomicDelete(key, revision: updated.modifyRevision)
        try expect(!(try await ctx.store.exists(key)), "gone after a matching delete")
        try await expectError(.keyNotFound) { try await ctx.store.atomicDelete(key, revision: updated.modifyRevision) }
    }

    static let watchKeyStartsWithValueThenChanges = check("watch(key) starts with the current value, then changes") {
        ctx in
        let key = try ctx.key("watched")
        try await ctx.store.put(key, "v0".bytes)
        let stream = try await ctx.store.watch(key)
        try await ctx.store.put(key, "v1".bytes)
        try await ctx.store.put(key, "v2".bytes)
        let events = try await collect(stream, 3)
        guard case .snapshot(let snapshot) = events[0] else {
            throw ConformanceFailure("first event is not a snapshot: \(events[0])")
        }
        try expectEqual(snapshot.entries.map(\.value), ["v0".bytes], "snapshot")
        try expect(!snapshot.historyLost, "a first snapshot has not lost history")
        guard case .put(let first) = events[1], case .put(let second) = events[2] else {
            throw ConformanceFailure("expected two puts, got \(events[1...])")
        }
        try expectEqual([first.value, second.value], ["v1".bytes, "v2".bytes], "changes in order")
        try expect(
            snapshot.revision < first.modifyRevision && first.modifyRevision < second.modifyRevision, "revisions grow")
    }

    static let watchMissingKeyThenCreateAndDelete = check(
        "watch of a missing key: empty snapshot, create, explicit delete"
    ) { ctx in
        let key = try ctx.key("appears")
        let stream = try await ctx.store.watch(key)
        try await ctx.store.put(key, "here".bytes)
        try await ctx.store.delete(key)
        let events = try await collect(stream, 3)
        guard case .snapshot(let snapshot) = events[0] else {
            throw ConformanceFailure("first event is not a snapshot")
        }
        try expect(snapshot.entries.isEmpty, "snapshot of a missing key is empty")
        guard case .put(let created) = events[1] else { throw ConformanceFailure("expected a put, got \(events[1])") }
        try expectEqual(created.value, "here".bytes, "created value")
        guard case .deleted(let deletion) = events[2] else {
            throw ConformanceFailure("expected a delete, got \(events[2])")
        }
        try expectEqual(deletion.key, key, "deleted key")
        try expect(deletion.reason != .expired, "an explicit delete is not reported as expiry")
        try expect(deletion.revision > created.modifyRevision, "delete revision after the create")
    }

    /// Each change waits for the one before it to be seen: Consul answers a blocking query with the
    /// latest state, so a delete and a put written back to back can arrive in one answer, in an order
    /// it cannot know (it gives a delete no index). Ordering under back-to-back writes is the next
    /// check's subject.
    static let watchTreeSnapshotThenChanges = check("watchTree: snapshot of the subtree, then changes below it only") {
        ctx in
        let prefix = try ctx.key("dir")
        try await ctx.store.put(try ctx.key("dir/a"), "a".bytes)
        try await ctx.store.put(try ctx.key("dir/b/c"), "c".bytes)
        let stream = try await ctx.store.watchTree(prefix)
        guard case .snapshot(let snapshot) = try await collect(stream, 1)[0] else {
            throw ConformanceFailure("first event is not a snapshot")
        }
        try expectEqual(snapshot.entries.map(\.value), ["a".bytes, "c".bytes], "snapshot entries")
        try await ctx.store.put(try ctx.key("dirty"), "sibling".bytes)  // shares a string prefix: not below
        try await ctx.store.put(try ctx.key("dir/d"), "d".bytes)
        let afterSibling = try await collect(stream, 1)[0]
        guard case .put(let d) = afterSibling, d.key == (try ctx.key("dir/d")) else {
            throw ConformanceFailure("expected put of dir/d, got \(afterSibling)")
        }
        try await ctx.store.delete(try ctx.key("dir/a"))
        let afterDelete = try await collect(stream, 1)[0]
        guard case .deleted(let gone) = afterDelete, gone.key == (try ctx.key("dir/a")) else {
            throw ConformanceFailure("expected delete of dir/a, got \(afterDelete)")
        }
        try await ctx.store.put(try ctx.key("dir/b/c"), "c2".bytes)
        let afterUpdate = try await collect(stream, 1)[0]
        guard case .put(let c2) = afterUpdate, c2.value == "c2".bytes else {
            throw ConformanceFailure("expected put of dir/b/c, got \(afterUpdate)")
        }
    }

    static let watchHasNoGapUnderConcurrentWrites = check(
        "no gap between snapshot and changes under concurrent writes", clients: 2
    ) { ctx in
        let key = try ctx.key("counter")
        let writer = ctx.clients[1]
        let total = 60
        try await ctx.store.put(key, "0".bytes)
        let stream: WatchStream = try await withThrowingTaskGroup(of: WatchStream?.self) { group in
            group.addTask {
                for value in 1...total { try await writer.put(key, String(value).bytes) }
                return nil
            }
            group.addTask { try await ctx.store.watch(key) }
            var watch: WatchStream?
            for try await result in group { if let result { watch = result } }
            return watch!
        }
        let result = try await withDeadline(.seconds(20), "all \(total) values") {
            var seen: [Int] = []
            for try await event in stream {
                switch event {
                case .snapshot(let snapshot):
                    seen.append(Int(snapshot.entries.first?.stringValue ?? "") ?? -1)
                case .put(let entry):
                    seen.append(Int(entry.stringValue) ?? -1)
                case .deleted:
                    throw ConformanceFailure("unexpected delete")
                }
                if seen.last == total { return seen }
            }
            return seen
        }
        let expected = Array(result[0]...total)
        try expectEqual(result, expected, "snapshot value then every later value exactly once, in order")
    }

    static let sessionExpiryRemovesBoundKeys = check("session TTL expiry removes bound keys", clients: 2) { ctx in
        let owner = ctx.clients[0]
        let observer = ctx.clients[1]
        let session = try await owner.makeSession(ttl: ctx.sessionTTL)
        let key = try ctx.key("ephemeral")
        try await owner.put(key, "mine".bytes, options: .boundTo(session))
        try expectEqual(try await observer.get(key)?.session, session.id, "entry names its session")
        let stream = try await observer.watch(key)
        session.abandon()
        let events = try await collect(stream, 2, within: ctx.expiryDeadline)
        guard case .deleted(let deletion) = events[1] else {
            throw ConformanceFailure("expected a delete, got \(events[1])")
        }
        try expect(deletion.reason != .deleted, "expiry is not reported as an explicit delete")
        let ended = try await withDeadline(ctx.expiryDeadline, "owner sees expiry") { await session.waitUntilEnded() }
        try expectEqual(ended, .expired, "owner's session state")
        try expect(!(try await observer.exists(key)), "bound key is gone")
    }

    static let closingSessionRemovesKeys = check("closing a session removes its keys at once", clients: 2) { ctx in
        let session = try await ctx.clients[0].makeSession(ttl: ctx.sessionTTL)
        let bound = try ctx.key("bound")
        let free = try ctx.key("free")
        try await ctx.clients[0].put(bound, [1], options: .boundTo(session))
        try await ctx.clients[0].put(free, [2])
        try await session.close()
        try expectEqual(session.state, .closed, "state after close")
        try expect(!(try await ctx.clients[1].exists(bound)), "bound key removed on close")
        try expect(try await ctx.clients[1].exists(free), "unbound key kept")
        try await session.close()  // idempotent
    }

    static let revokedSessionIsExpiredForItsOwner = check(
        "a session revoked by another client is expired for its owner", clients: 2, requires: .revokeForeignSession
    ) { ctx in
        let session = try await ctx.clients[0].makeSession(ttl: ctx.sessionTTL * 10)
        let key = try ctx.key("revoked")
        try await ctx.clients[0].put(key, [1], options: .boundTo(session))
        try await ctx.clients[1].revokeSession(session.id)
        try expect(!(try await ctx.clients[1].exists(key)), "key of a revoked session is gone")
        let ended = try await withDeadline(ctx.expiryDeadline, "owner sees the revocation") {
            await session.waitUntilEnded()
        }
        try expectEqual(ended, .expired, "owner's state after revocation")
    }

    static let endedSessionCannotBindKeys = check("an ended session cannot bind keys") { ctx in
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL)
        try await session.close()
        let key = try ctx.key("late")
        try await expectError(.sessionExpired) { try await ctx.store.put(key, [1], options: .boundTo(session)) }
        try expect(!(try await ctx.store.exists(key)), "nothing written")
    }

    static let invalidKeysAreRejected = check("invalid keys are rejected with invalidKey") { ctx in
        for bad in [
            "", "/", "a//b", "a/./b", "a/../b", "a b", "a#b", "a?b", "a%b", "naïve", "tab\tkey",
            String(repeating: "k", count: Key.maxLength + 1),
        ] {
            let error = try await expectError(.invalidKey) { try await ctx.store.get(bad) }
            try expect(!error.message.isEmpty, "message explains the rule")
            try await expectError(.invalidKey) { try await ctx.store.put(bad, "x") }
            try await expectError(.invalidKey) { try await ctx.store.watch(bad) }
        }
    }

    static let oversizedValuesAreRejected = check("oversized values are rejected with valueTooLarge") { ctx in
        let limit = ctx.store.limits.maxValueSize
        let key = try ctx.key("big")
        let error = try await expectError(.valueTooLarge) {
            try await ctx.store.put(key, [UInt8](repeating: 7, count: limit + 1))
        }
        try expect(error.key == key.path, "error names the key")
        try await expectError(.valueTooLarge) {
            try await ctx.store.atomicPut(key, [UInt8](repeating: 7, count: limit + 1), condition: .absent)
        }
        try expect(!(try await ctx.store.exists(key)), "nothing written")
        try await ctx.store.put(key, [UInt8](repeating: 7, count: min(limit, 64 * 1024)))
        try expect(try await ctx.store.exists(key), "a value within the limit is accepted")
    }

    static let invalidSessionTTLIsRejected = check("an out-of-range session TTL is rejected with invalidArgument") {
        ctx in
        try await expectError(.invalidArgument) { try await ctx.store.makeSession(ttl: .zero) }
        try await expectError(.invalidArgument) { try await ctx.store.makeSession(ttl: .seconds(-1)) }
    }

    static let cancellingAWatchEndsIt = check("cancelling a watcher ends its watch; the store keeps working") { ctx in
        let key = try ctx.key("cancelled-watch")
        let stream = try await ctx.store.watch(key)
        let consumer = Task {
            var count = 0
            for try await _ in stream { count += 1 }
            return count
        }
        consumer.cancel()
        let events = try await withDeadline(.seconds(10), "cancelled watch ends") { try await consumer.value }
        try expect(events <= 1, "no events after cancellation")
        try await ctx.store.put(key, [1])
        try expect(try await ctx.store.exists(key), "store still answers")
    }

    static let contendersAreOrderedAndSessionBound = check(
        "contenders queue in creation order and leave with their session", clients: 2
    ) { ctx in
        let prefix = try ctx.key("queue")
        var sessions: [Session] = []
        var created: [Contender] = []
        for index in 0..<3 {
            let session = try await ctx.clients[index % 2].makeSession(ttl: ctx.sessionTTL * 10)
            sessions.append(session)
            let joined = try await ctx.clients[index % 2].line.join(
                prefix, role: .lock, value: "c\(index)".bytes, session: session)
            // Where joining left it: first, or just behind the one created before it.
            let ahead: Key?
            switch joined.place {
            case .first: ahead = nil
            case .behind(let predecessor): ahead = predecessor.key
            case nil: throw ConformanceFailure("contender \(index) was not in line right after joining")
            }
            try expectEqual(ahead, created.last?.key, "place of contender \(index) right after joining")
            created.append(joined.contender)
        }
        try expect(created[0].order < created[1].order && created[1].order < created[2].order, "ordering numbers grow")
        let line = try await ctx.store.line.contenders(in: prefix)
        try expectEqual(line.map(\.key), created.map(\.key), "line in creation order")
        try expectEqual(line.map(\.value), ["c0".bytes, "c1".bytes, "c2".bytes], "values carried")
        try expect(line.allSatisfy { $0.key.isChild(of: prefix) }, "contenders are direct children")
        try await sessions[1].close()
        try expectEqual(
            try await ctx.clients[1].line.contenders(in: prefix).map(\.key), [created[0].key, created[2].key],
            "closed session left the line")
        for session in sessions { try await session.close() }
        try expectEqual(try await ctx.store.line.contenders(in: prefix).count, 0, "empty line")
    }
}
