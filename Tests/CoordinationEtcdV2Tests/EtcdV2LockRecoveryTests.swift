import CoordinationCore
import CoordinationTestKit
import Testing

@testable import CoordinationEtcdV2

/// libkv's first fault: after a connection error during acquisition it swapped without an index
/// and could overwrite a live holder. Here a contender that lost the answer reads the key back
/// and holds it only if it carries its own owner token. The lost answer is staged by writing the
/// key exactly as the contender's own create would have.
@Suite(
    "etcd v2 lock recovery", .enabled(if: EtcdV2TestServer.isAvailable, "needs ETCD_V2_ENDPOINT (scripts/test)"))
struct EtcdV2LockRecoveryTests {
    @Test("after a lost answer, a contender holds the key only if the value carries its owner token")
    func recoverTakesOnlyItsOwnKey() async throws {
        let key = try Key("tests/v2lock/recover-\(UInt32.random(in: 0 ... .max))")
        try await EtcdV2TestServer.withStore { store in
            let lock = EtcdV2Lock(key, store: store, ttl: .seconds(5))
            let path = store.keySpace.path(key)
            // Someone else's create landed: the contender must wait, not take over.
            let foreign = try await store.send(
                .put, path, query: [("prevExist", "false"), ("ttl", "5")],
                value: V2ValueCodec.encode([], session: "lock-someone-else"), operation: "test")
            guard case .success(let written, _) = foreign else {
                Issue.record("could not stage the foreign holder")
                return
            }
            guard case .wait = try await lock.recover(path: path, owner: "lock-me") else {
                Issue.record("a contender took over a key it did not create")
                return
            }
            #expect(try await store.get(key)?.modifyRevision.value == written.node.modifiedIndex, "key untouched")
            try await store.delete(key)
            // Our own create landed but its answer was lost: the contender holds it.
            _ = try await store.send(
                .put, path, query: [("prevExist", "false"), ("ttl", "5")],
                value: V2ValueCodec.encode([], session: "lock-me"), operation: "test")
            guard case .held(let node, _) = try await lock.recover(path: path, owner: "lock-me") else {
                Issue.record("a contender did not recognise its own key")
                return
            }
            #expect(V2ValueCodec.decode(node.value ?? "").session == "lock-me")
            // Nothing there: race again.
            try await store.delete(key)
            guard case .retry = try await lock.recover(path: path, owner: "lock-me") else {
                Issue.record("an absent key should make the contender race again")
                return
            }
        }
    }
}
