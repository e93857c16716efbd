import CoordinationCore
import CoordinationEtcdV2
import CoordinationTestKit
import Synchronization
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// libkv's CAS-plus-watch lock against a real etcd v2.
@Suite(
    "etcd v2 lock", .serialized,
    .enabled(if: EtcdV2TestServer.isAvailable, "needs ETCD_V2_ENDPOINT (scripts/test starts etcd)"))
struct EtcdV2LockTests {
    static func freshKey(_ name: String) throws -> Key {
        try Key("tests/v2lock/\(name)-\(UInt32.random(in: 0 ... .max))")
    }

    /// What the guarded resource saw: how many hold it now, the most it ever saw, every token.
    final class Resource: Sendable {
        let state = Mutex<(inside: Int, most: Int, tokens: [UInt64])>((0, 0, []))

        func enter(_ token: FencingToken) {
            state.withLock {
                $0.inside += 1
                $0.most = max($0.most, $0.inside)
                $0.tokens.append(token.value)
            }
        }

        func leave() { state.withLock { $0.inside -= 1 } }
    }

    @Test("12 contenders on 3 clients: never two holders, fencing tokens grow with every grant")
    func mutualExclusion() async throws {
        let key = try Self.freshKey("mutex")
        let stores = try (0..<3).map { _ in try EtcdV2TestServer.makeStore() }
        let resource = Resource()
        let contenders = 12
        let rounds = 2
        try await withThrowingTaskGroup(of: Void.self) { running in
            for store in stores { running.addTask { try await store.run() } }
            try await withDeadline(.seconds(90), "every contender takes the lock \(rounds) times") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<contenders {
                        let store = stores[index % stores.count]
                        group.addTask {
                            for _ in 0..<rounds {
                                try await EtcdV2Lock(key, store: store, ttl: .seconds(5)).withLock { hold in
                                    resource.enter(hold.token)
                                    try await Task.sleep(for: .milliseconds(5))
                                    resource.leave()
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            for store in stores { await store.close() }
            running.cancelAll()
        }
        let seen = resource.state.withLock { $0 }
        #expect(seen.most == 1, "at most one holder at a time")
        #expect(seen.tokens.count == contenders * rounds, "every grant happened")
        #expect(
            seen.tokens == seen.tokens.sorted() && Set(seen.tokens).count == seen.tokens.count,
            "tokens strictly increase in grant order: \(seen.tokens)")
    }

    @Test("a crashed holder's key expires after its TTL and the waiter takes the lock")
    func expiryReleasesACrashedHolder() async throws {
        let key = try Self.freshKey("crash")
        try await EtcdV2TestServer.withStore { store in
            let crashed = try await EtcdV2Lock(key, store: store, ttl: .seconds(2)).lock()
            crashed.abandon()  // stops refreshing, leaves the key: as a crash would
            let next = try await withDeadline(.seconds(20), "the waiter takes the lock after expiry") {
                try await EtcdV2Lock(key, store: store, ttl: .seconds(2)).lock()
            }
            #expect(next.token > crashed.token, "the new holder's token is larger")
            try await next.unlock()
        }
    }

    @Test("a holder that refreshes keeps the lock past several TTLs; a waiter gets it only after unlock")
    func refreshKeepsTheLock() async throws {
        let key = try Self.freshKey("refresh")
        try await EtcdV2TestServer.withStore { store in
            let hold = try await EtcdV2Lock(key, store: store, ttl: .seconds(2)).lock()
            let granted = Atomic<Bool>(false)
            let waiter = Task {
                let next = try await EtcdV2Lock(key, store: store, ttl: .seconds(2)).lock()
                granted.store(true, ordering: .sequentiallyConsistent)
                try await next.unlock()
                return next.token
            }
            try await Task.sleep(for: .seconds(7))  // three and a half TTLs
            #expect(hold.state == .held, "still held after several TTLs")
            let grantedMeanwhile = granted.load(ordering: .sequentiallyConsistent)
            #expect(!grantedMeanwhile, "the waiter was not granted meanwhile")
            let entry = try await store.get(key)
            #expect(entry?.createRevision.value == hold.token.value, "the same key, refreshed, not replaced")
            try await hold.unlock()
            let token = try await withDeadline(.seconds(20), "the waiter is granted after unlock") {
                try await waiter.value
            }
            #expect(token > hold.token)
        }
    }

    @Test("unlock deletes the key; unlocking a lost hold says lockLost")
    func unlockDeletesTheKey() async throws {
        let key = try Self.freshKey("unlock")
        try await EtcdV2TestServer.withStore { store in
            let hold = try await EtcdV2Lock(key, store: store, ttl: .seconds(5)).lock()
            #expect(try await store.exists(key))
            try await hold.unlock()
            #expect(hold.state == .released)
            #expect(!(try await store.exists(key)), "the key is gone after unlock")

            let second = try await EtcdV2Lock(key, store: store, ttl: .seconds(5)).lock()
            try await store.delete(key)  // someone removes it behind the holder's back
            let error = await #expect(throws: CoordinationError.self) { try await second.unlock() }
            #expect(error?.code == .lockLost)
        }
    }

    @Test("withLock cancels its body and throws lockLost when the key is taken away")
    func withLockSeesLoss() async throws {
        let key = try Self.freshKey("withlock")
        try await EtcdV2TestServer.withStore { store in
            let started = AsyncStream<Void>.makeStream()
            let work = Task {
                try await EtcdV2Lock(key, store: store, ttl: .seconds(1)).withLock { _ in
                    started.continuation.yield()
                    try await Task.sleep(for: .seconds(3600))
                }
            }
            var iterator = started.stream.makeAsyncIterator()
            _ = await iterator.next()
            try await store.delete(key)
            let error = await #expect(throws: CoordinationError.self) {
                try await withDeadline(.seconds(20), "withLock returns after the loss") { try await work.value }
            }
            #expect(error?.code == .lockLost)
        }
    }

    @Test("a contender whose create landed but whose answer was lost holds only its own key")
    func recoveryReadsTheOwnerToken() async throws {
        // A foreign holder's key (as another libkv client would write it) must never be taken over:
        // the waiter only gets the lock once that key is deleted.
        let key = try Self.freshKey("foreign")
        try await EtcdV2TestServer.withStore { store in
            try await store.put(key, "held by a libkv client", options: .none)
            let waiter = Task { try await EtcdV2Lock(key, store: store, ttl: .seconds(2)).lock() }
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await store.get(key)?.stringValue == "held by a libkv client", "not taken over")
            try await store.delete(key)
            let hold = try await withDeadline(.seconds(20), "granted after the foreign key goes") {
                try await waiter.value
            }
            try await hold.unlock()
        }
    }

    @Test("cancelling a waiter throws cancelled and leaves the holder's key alone")
    func cancelledWaiter() async throws {
        let key = try Self.freshKey("cancel")
        try await EtcdV2TestServer.withStore { store in
            let hold = try await EtcdV2Lock(key, store: store, ttl: .seconds(5)).lock()
            let waiter = Task { try await EtcdV2Lock(key, store: store, ttl: .seconds(5)).lock() }
            try await Task.sleep(for: .milliseconds(300))
            waiter.cancel()
            do {
                _ = try await withDeadline(.seconds(40), "the cancelled waiter returns") { try await waiter.value }
                Issue.record("a cancelled waiter was granted the lock")
            } catch let error as CoordinationError {
                #expect(error.code == .cancelled)
            }
            #expect(try await store.get(key)?.createRevision.value == hold.token.value)
            try await hold.unlock()
        }
    }
}
