import CoordinationCore
import CoordinationTestKit
import Testing

@testable import CoordinationEtcd

@Suite("etcd compaction", .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS (scripts/test starts etcd)"))
struct EtcdCompactionTests {
    /// A watch that must resume from a revision etcd has compacted away (as after a reconnect) is
    /// told so: a fresh snapshot marked `historyLost` with the current value, then live changes.
    @Test("a watch resuming from a compacted revision gets a historyLost snapshot, then live events")
    func resumeAfterCompaction() async throws {
        let store = try EtcdTestServer.makeStore()
        try await store.withRunning { store in
            let key = try Key("compaction/\(UInt64.random(in: 0...UInt64.max))")
            let (events, second) = try await store.watchResumingPastCompaction(key)
            guard case .snapshot(let fresh) = try await collect(events, 1)[0] else {
                Issue.record("the first event after a compaction must be a snapshot")
                return
            }
            #expect(fresh.historyLost)
            #expect(fresh.entries.map(\.value) == [Array("two".utf8)])
            #expect(fresh.revision >= second.modifyRevision)

            // The watch was re-created after the compaction: later changes still arrive.
            try await store.put(key, Array("three".utf8))
            let after = try await collect(events, 1)[0]
            guard case .put(let entry) = after else {
                Issue.record("expected the put after the snapshot, got \(after)")
                return
            }
            #expect(entry.value == Array("three".utf8))
            try await store.delete(key)
        }
    }
}

extension EtcdStore {
    /// Writes `key` twice ("one", "two"), compacts through the second write, and starts a watch that
    /// resumes after the revision before the first: it asks for a revision the compaction removed.
    /// Returns the watch and the second write's entry.
    func watchResumingPastCompaction(_ key: Key) async throws -> (events: WatchStream, latest: Entry) {
        try await put(key, Array("one".utf8))
        let first = try await get(key)
        try await put(key, Array("two".utf8))
        guard let first, let second = try await get(key) else {
            throw ConformanceFailure("'\(key)' was not there right after it was written")
        }
        try await compact(through: second.modifyRevision)
        return (try watchResuming(key, after: Revision(first.modifyRevision.value - 1)), second)
    }
}
