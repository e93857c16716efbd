import Coordination
import CoordinationCore
import CoordinationTestKit
import CoordinationZooKeeper
import Testing

/// Curator's rule for what counts as a contender: a child whose name ends in a sequence number.
/// A child with a value but no sequence number (written there by another tool, or by a `put`)
/// neither blocks the line nor shortens it.
@Suite(
    "ZooKeeper contender line",
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts a ZooKeeper server)"))
struct ZooKeeperLineTests {
    @Test("a child with data but no sequence number never blocks the next waiter")
    func strayChildDoesNotBlock() async throws {
        let store = try ZooKeeperTestServer.makeStore()
        try await store.withRunning { store in
            let name = try Key("line/stray-\(UInt32.random(in: 0 ... .max))")
            let first = try await store.makeSession(ttl: .seconds(10))
            let second = try await store.makeSession(ttl: .seconds(10))
            let held = try await Lock(name, session: first, store: store).acquire()
            try await store.put(try name.appending("stray"), Array("written by another tool".utf8))
            let waiter = Task { try await Lock(name, session: second, store: store).acquire() }
            try await withDeadline(.seconds(10), "the waiter queues") {
                while try await store.line.contenders(in: name).count < 2 {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(
                try await store.line.contenders(in: name).map(\.key) == [
                    held.key, try await waiterKey(store, name, not: held.key),
                ])
            try await held.release()
            let next = try await withDeadline(.seconds(10), "the waiter is granted past the stray child") {
                try await waiter.value
            }
            try await next.release()
            try await first.close()
            try await second.close()
            try await store.deleteTree(name)
        }
    }

    func waiterKey(_ store: ZooKeeperStore, _ name: Key, not held: Key) async throws -> Key {
        try #require(try await store.line.contenders(in: name).first { $0.key != held }?.key)
    }
}
