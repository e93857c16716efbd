import CoordinationCore
import CoordinationTestKit
import Foundation
import SwiftProtobuf
import Testing

@testable import CoordinationEtcd

/// Issue 15: a consumer that stops reading a watch cannot grow the store's memory without bound,
/// against real etcd. The writes go in transactions of 100 puts (one revision each), so the
/// 10,000 events take about a hundred requests.
@Suite("etcd: a slow watch consumer", .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS"))
struct EtcdSlowWatcherTests {
    @Test(
        "a watch whose consumer stops reading ends with historyLost after WatchStream.bufferLimit events; a watch that keeps up misses nothing"
    )
    func slowConsumerIsCutOff() async throws {
        let store = try EtcdTestServer.makeStore()
        try await store.withRunning { store in
            let root = try Key("slow-watcher/run-\(UInt32.random(in: 0 ... .max))")
            let stalled = try await store.watchTree(root)
            let steady = try await store.watchTree(root)
            let writes = WatchStream.bufferLimit + 100
            // The steady consumer reads as the events come; the stalled one never does until the end.
            let steadyCount = Task {
                var count = 0
                for try await event in steady {
                    if case .put = event { count += 1 }
                    if count == writes { break }
                }
                return count
            }
            var written = 0
            while written < writes {
                let batch = min(100, writes - written)
                let request = Etcdserverpb_TxnRequest.with { txn in
                    txn.success = (written..<(written + batch)).map { index in
                        .put(
                            Data(store.keySpace.bytes(try! root.appending("k\(index)"))), Data("\(index)".utf8),
                            lease: 0)
                    }
                }
                _ = try await store.call("batch of puts", .txn, request)
                written += batch
            }
            #expect(
                try await withDeadline(.seconds(30), "the steady watch sees every put") { try await steadyCount.value }
                    == writes)
            // Unbounded, this would hold all of them and then wait for more: the deadline fails it.
            let (held, ending) = try await withDeadline(.seconds(10), "the stalled watch ends") {
                () async throws -> (Int, CoordinationError?) in
                var held = 0
                do {
                    for try await _ in stalled { held += 1 }
                    Issue.record("the stalled watch finished silently after \(held) events")
                    return (held, nil)
                } catch {
                    return (held, error as? CoordinationError)
                }
            }
            #expect(held == WatchStream.bufferLimit, "the snapshot and the events held before the overflow")
            #expect(ending?.code == .historyLost, "\(String(describing: ending))")
            // The store goes on: a new watch of the range starts from the current state.
            let again = try await store.watchTree(root)
            var iterator = again.makeAsyncIterator()
            guard case .snapshot(let snapshot) = try await iterator.next() else {
                Issue.record("a new watch did not start with a snapshot")
                return
            }
            #expect(snapshot.entries.count == writes)
            try await store.deleteTree(root)
        }
    }
}
