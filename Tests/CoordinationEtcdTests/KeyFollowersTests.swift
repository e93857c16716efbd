@_spi(Backend) import CoordinationCore
import CoordinationTestKit
import Synchronization
import Testing

@testable import CoordinationEtcd

/// The etcd waiter's kept watches, driven by a watch stream the test feeds by hand: no server, so
/// the order of snapshot, changes and waits is exact.
@Suite("etcd key followers")
struct KeyFollowersTests {
    /// A watcher that hands out streams the test feeds, and counts how many watches were started.
    final class Feed: Sendable {
        let started = Mutex<[WatchStream.Continuation]>([])
        var watcher: KeyFollowers.Watcher {
            { [self] _ in
                let (stream, continuation) = WatchStream.makeStream()
                started.withLock { $0.append(continuation) }
                return stream
            }
        }
        var count: Int { started.withLock { $0.count } }
        func send(_ event: WatchEvent, to index: Int = 0) {
            _ = started.withLock { $0[index] }.yield(event)
        }
        /// Waits until `count` watches have been started.
        func waitForWatches(_ count: Int) async throws {
            try await withDeadline(.seconds(5), "\(count) watches started") {
                while self.count < count { try await Task.sleep(for: .milliseconds(1)) }
            }
        }
    }

    static let key = try! Key("locks/a/1")
    static func entry(created: UInt64, modified: UInt64? = nil, session: String? = nil) -> Entry {
        Entry(
            key: key, value: [], createRevision: Revision(created), modifyRevision: Revision(modified ?? created),
            session: session.map(SessionID.init))
    }

    /// Starts a wait in a task and reports whether it has returned.
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    final class Wait: Sendable {
        let done = Flag()
        let task: Task<Void, any Error>
        init(_ followers: KeyFollowers, _ feed: Feed, createdAt: UInt64, session: String? = nil) {
            let done = self.done
            task = Task {
                try await followers.waitUntilGone(
                    KeyFollowersTests.key, createdAt: Revision(createdAt), session: session.map(SessionID.init),
                    watch: feed.watcher)
                done.value.store(true, ordering: .releasing)
            }
        }
        var hasReturned: Bool { done.value.load(ordering: .acquiring) }
    }

    /// Lets the tasks run; used only to show that something did *not* happen.
    static func settle() async throws {
        for _ in 0..<20 {
            await Task.yield()
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test("a follower behind the waiter's incarnation never says gone; the delete of that incarnation does")
    func neverAnswersFromAnOlderState() async throws {
        let feed = Feed()
        let followers = KeyFollowers(executor: nil)
        // The waiter saw the incarnation created at 7; the watch's snapshot is from revision 5,
        // before it was created (the key was absent then).
        let wait = Wait(followers, feed, createdAt: 7)
        try await feed.waitForWatches(1)
        feed.send(.snapshot(WatchSnapshot(entries: [], revision: Revision(5))))
        try await Self.settle()
        #expect(!wait.hasReturned, "an absent key at revision 5 says nothing about the incarnation created at 7")
        feed.send(.put(Self.entry(created: 7)))
        feed.send(.put(Self.entry(created: 7, modified: 8)))
        try await Self.settle()
        #expect(!wait.hasReturned, "a change of value is not a departure")
        feed.send(.deleted(Deletion(key: Self.key, revision: Revision(9), reason: .deleted)))
        try await wait.task.value
        #expect(wait.hasReturned)
    }

    @Test("the watch is kept: a later wait on the key starts no watch, and one already gone returns at once")
    func watchIsReused() async throws {
        let feed = Feed()
        let followers = KeyFollowers(executor: nil)
        let first = Wait(followers, feed, createdAt: 3)
        try await feed.waitForWatches(1)
        feed.send(.snapshot(WatchSnapshot(entries: [Self.entry(created: 3)], revision: Revision(4))))
        feed.send(.deleted(Deletion(key: Self.key, revision: Revision(5), reason: .deleted)))
        try await first.task.value
        // The same key created again at 6 (the contender queued again): a new wait on it.
        feed.send(.put(Self.entry(created: 6)))
        let second = Wait(followers, feed, createdAt: 6)
        try await Self.settle()
        #expect(!second.hasReturned)
        feed.send(.put(Self.entry(created: 10)))  // deleted and created again in between: gone too
        try await second.task.value
        // Known gone already (the follower is at 10, the incarnation of 6 is not there): no wait.
        try await Wait(followers, feed, createdAt: 6).task.value
        #expect(feed.count == 1, "one watch for all three waits")
        #expect(followers.followedKeys == [Self.key])
    }

    @Test("with a session: a key bound to another session counts as gone")
    func sessionChange() async throws {
        let feed = Feed()
        let followers = KeyFollowers(executor: nil)
        let wait = Wait(followers, feed, createdAt: 2, session: "a")
        try await feed.waitForWatches(1)
        feed.send(.snapshot(WatchSnapshot(entries: [Self.entry(created: 2, session: "a")], revision: Revision(3))))
        try await Self.settle()
        #expect(!wait.hasReturned)
        feed.send(.put(Self.entry(created: 2, modified: 4, session: "b")))
        try await wait.task.value
    }

    @Test("a cancelled waiter gets cancelled and the others keep waiting; a failed watch fails its waiters")
    func cancellationAndFailure() async throws {
        let feed = Feed()
        let followers = KeyFollowers(executor: nil)
        let cancelled = Wait(followers, feed, createdAt: 2)
        let other = Wait(followers, feed, createdAt: 2)
        try await feed.waitForWatches(1)
        cancelled.task.cancel()
        let error = await #expect(throws: CoordinationError.self) { try await cancelled.task.value }
        #expect(error?.code == .cancelled)
        try await Self.settle()
        #expect(!other.hasReturned)
        feed.started.withLock { $0[0] }.fail(CoordinationError(.connectionFailed, "gone"))
        let failure = await #expect(throws: CoordinationError.self) { try await other.task.value }
        #expect(failure?.code == .connectionFailed)
        #expect(followers.followedKeys.isEmpty, "a failed watch is not kept")
        // The next wait starts a new watch.
        let again = Wait(followers, feed, createdAt: 2)
        try await feed.waitForWatches(2)
        feed.send(.snapshot(WatchSnapshot(entries: [], revision: Revision(9))), to: 1)
        try await again.task.value
    }

    @Test("idle keys are dropped after the idle timeout; close fails the waiters with storeClosed")
    func idleAndClose() async throws {
        let feed = Feed()
        let followers = KeyFollowers(idleTimeout: .zero, executor: nil)
        let first = Wait(followers, feed, createdAt: 2)
        try await feed.waitForWatches(1)
        feed.send(.snapshot(WatchSnapshot(entries: [], revision: Revision(3))))
        try await first.task.value
        #expect(followers.followedKeys == [Self.key])
        // Any later wait sweeps keys idle for longer than the timeout (zero here).
        let otherKey = try Key("locks/a/2")
        let waiting = Task {
            try await followers.waitUntilGone(otherKey, createdAt: Revision(1), session: nil, watch: feed.watcher)
        }
        try await feed.waitForWatches(2)
        #expect(followers.followedKeys == [otherKey])
        followers.close()
        let error = await #expect(throws: CoordinationError.self) { try await waiting.value }
        #expect(error?.code == .storeClosed)
    }
}
