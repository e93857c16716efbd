import Coordination
import CoordinationTestKit
import Testing

@testable import CoordinationEtcd

/// A connection runs out of client stream ids after 2^30 calls (about 12 days at 1,000 calls a
/// second). Before that, the store must move to a new connection, let the old one finish its calls
/// and close it, so that no call ever fails for want of a stream id.
@Suite("etcd stream ids", .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS (scripts/test starts etcd)"))
struct EtcdStreamIDTests {
    @Test("stream ids running out: new connections take over and every call, watch and lock goes on")
    func streamIDsRunOut() async throws {
        let store = try EtcdTestServer.makeStore(namespace: "stream-ids-\(UInt32.random(in: 0 ... .max))")
        // 2^31 - 1 is the last id. Each connection starts 30 ids before it and is retired 10 ids
        // before it (in production: 2^20 before), so it takes about 20 calls and has room for the
        // calls opened while the next connection comes up. Without the retirement, a connection's
        // 31st call finds no id left and fails.
        let last = GRPCStreamsHandler.maximumStreamID
        await store.startStreamIDs(at: last - 60, retiringAfter: last - 20)
        try await store.withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(10))
            let events = try await store.watchTree(try Key("counter"))
            let lock = Lock(try Key("lock"), session: session, store: store)
            try await withDeadline(.seconds(60), "200 rounds on rotating connections") {
                var iterator = events.makeAsyncIterator()
                _ = try await iterator.next()  // the snapshot
                for round in 0..<200 {
                    try await store.put(try Key("counter/value"), Array("\(round)".utf8))
                    _ = try await store.get(try Key("counter/value"))
                    if round.isMultiple(of: 20) {
                        let grant = try await lock.acquire()
                        try await grant.release()
                    }
                    // The watch opened on the first connection still delivers every put.
                    guard case .put(let entry) = try await iterator.next() else {
                        throw ConformanceFailure("round \(round): the watch did not deliver the put")
                    }
                    try expectEqual(entry.stringValue, "\(round)", "round \(round)")
                }
            }
            try expect(session.isActive, "the session's keep-alives went on across the connections")
            let opened = await store.connectionsOpened()
            try expect(opened >= 5, "connections were replaced as their ids ran out (opened \(opened))")
            try await session.close()
        }
    }
}
