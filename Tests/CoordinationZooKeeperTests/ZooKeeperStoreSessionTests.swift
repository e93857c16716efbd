import CoordinationCore
import CoordinationNIO
import CoordinationTestKit
import NIOCore
import Synchronization
import Testing

@testable import CoordinationZooKeeper

/// The store's own session (reads, watches, unbound writes) against the real server.
@Suite(
    "ZooKeeper store session",
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts ZooKeeper)")
)
struct ZooKeeperStoreSessionTests {
    @Test("the store's connections and its sessions' share one event loop, the store's task executor")
    func oneEventLoopPerStore() async throws {
        let store = try ZooKeeperTestServer.makeStore()
        try await store.withRunning { store in
            let executor = try #require(store.taskExecutor as? EventLoopTaskExecutor)
            let key = try Key("executor/\(UInt32.random(in: 0 ... .max))")
            try await store.put(key, "1")
            let session = try await store.makeSession(ttl: .seconds(5))
            let clients = store.state.withLock { state in
                [state.primary, state.sessions[session.id]?.client].compactMap { $0 }
            }
            #expect(clients.count == 2)
            for client in clients { #expect(client.eventLoop === executor.eventLoop) }
            // A call under the executor's preference continues on the loop after its reply.
            let onLoop = try await withTaskExecutorPreference(executor) { () async throws -> Bool in
                _ = try await store.get(key)
                return executor.eventLoop.inEventLoop
            }
            #expect(onLoop)
            try await store.delete(key)
            try await session.close()
        }
    }

    @Test("a key created and deleted at once is watched as both, 500 times in a row")
    func createThenDeleteIsSeenWhole() async throws {
        // A notification carries no data: the watch reads the znode after it. That read must reach
        // the server before the writer's next write on the same session, or a create followed at
        // once by a delete is seen as nothing (it was, about 3 times in 100, while the watch loop
        // ran on the global executor).
        let store = try ZooKeeperTestServer.makeStore()
        try await store.withRunning { store in
            let prefix = try Key("create-delete/\(UInt32.random(in: 0 ... .max))")
            for round in 0..<500 {
                let key = try prefix.appending("k\(round)")
                let stream = try await store.watch(key)
                try await store.put(key, "here")
                try await store.delete(key)
                let events = try await withDeadline(.seconds(5), "round \(round): snapshot, put, delete") {
                    () async throws -> [WatchEvent] in
                    var events: [WatchEvent] = []
                    for try await event in stream {
                        events.append(event)
                        if events.count == 3 { break }
                    }
                    return events
                }
                guard events.count == 3, case .put = events[1], case .deleted = events[2] else {
                    Issue.record("round \(round): \(events)")
                    return
                }
            }
        }
    }

    @Test("when the store's session expires, a watch starts over on a new one with a historyLost snapshot")
    func watchSurvivesStoreSessionExpiry() async throws {
        let configuration = try ZooKeeperTestServer.configuration(
            ZooKeeperTestServer.standalone, sessionTimeout: .seconds(2))
        let store = try ZooKeeperStore(configuration: configuration)
        let writer = try ZooKeeperTestServer.makeStore()
        defer {
            Task {
                await store.close()
                await writer.close()
            }
        }
        let prefix = try Key("store-session/\(UInt32.random(in: 0 ... .max))")
        try await writer.put(try prefix.appending("a"), "1")
        let stream = try await store.watchTree(prefix)
        let abandoned = Locked<ZooKeeperClient?>(nil)
        let seen = try await withDeadline(.seconds(30), "snapshot, restart, change") {
            () async throws -> [WatchEvent] in
            var seen: [WatchEvent] = []
            for try await event in stream {
                seen.append(event)
                switch seen.count {
                case 1:
                    // The store's session goes silent, as if the process had been cut off; the server
                    // expires it. Meanwhile the tree changes: the watch must not miss that for good.
                    let primary = try #require(store.state.withLock { $0.primary })
                    abandoned.withLock { $0 = primary }
                    primary.abandon()
                    try await writer.put(try prefix.appending("b"), "2")
                case 2:
                    // The watch goes on on the new session.
                    try await writer.put(try prefix.appending("c"), "3")
                default:
                    return seen
                }
            }
            return seen
        }
        guard seen.count == 3, case .snapshot(let first) = seen[0], case .snapshot(let again) = seen[1],
            case .put(let entry) = seen[2]
        else {
            Issue.record("expected snapshot, snapshot, put; got \(seen)")
            return
        }
        #expect(first.entries.map(\.stringValue) == ["1"] && !first.historyLost)
        #expect(again.historyLost, "the new snapshot says history was lost")
        #expect(again.entries.map(\.stringValue) == ["1", "2"])
        #expect(entry.stringValue == "3")
        let primary = abandoned.withLock { $0 }
        #expect(store.state.withLock { $0.primary } !== primary, "a new session serves the store")
    }
}
