@_spi(Backend) import CoordinationCore
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The etcd v2 lock as libkv documents it: one key, taken with create-and-compare-and-swap,
/// waited for with a watch, kept with TTL refreshes, released by deleting it.
///
/// 1. Contenders race to create the key with a TTL (`prevExist=false`).
/// 2. The creator takes hold with a compare-and-swap on the index its create returned. The others
///    fail that swap, and watch the key from the index right after the one the failed swap read,
///    so a release between their read and their watch is never missed.
/// 3. On the key's `delete`, `compareAndDelete` or `expire` event they race again (not FIFO).
/// 4. The holder refreshes the TTL by compare-and-swap on the index it last wrote, so a holder
///    that lost the key cannot refresh someone else's; a refresh that finds the key changed or
///    gone, or no acknowledged refresh for a whole TTL, ends the hold as lost.
/// 5. Unlock deletes the key by compare-and-delete on its index: after an unlock the key is gone.
///
/// Unlike libkv's client, a connection error during steps 1–2 never leads to an unconditional
/// write: the contender reads the key back and holds it only if the value carries its own owner
/// token. The fencing token is the key's `createdIndex`, which grows with every new holder.
///
/// This lock is not the `KeyValueStore` contender line that `Coordination.Lock` uses; it is for
/// code that shares a lock key with libkv / docker-style etcd v2 clients.
public struct EtcdV2Lock: Sendable {
    public let key: Key
    public let ttl: Duration
    public let value: [UInt8]
    private let store: EtcdV2Store

    /// - Parameters:
    ///   - key: the lock key, shared with the other clients of this lock.
    ///   - store: the etcd v2 store it lives in.
    ///   - ttl: the key's TTL, rounded up to whole seconds (etcd v2's granularity); a crashed holder
    ///     keeps the lock this long.
    ///   - value: what the key holds while locked (an owner's id, for the other clients to read).
    public init(_ key: Key, store: EtcdV2Store, ttl: Duration = .seconds(15), value: [UInt8] = []) {
        self.key = key
        self.store = store
        self.ttl = ttl
        self.value = value
    }

    private var ttlSeconds: Int64 { max(1, (EtcdV2Store.milliseconds(ttl) + 999) / 1000) }

    /// Waits until the lock is held. Cancelling the waiting task throws `cancelled`; a contender
    /// that had just created the key removes it again.
    public func lock() async throws(CoordinationError) -> EtcdV2LockHold {
        guard ttl > .zero else {
            throw store.errors.make(.invalidArgument, "a lock TTL must be positive", key: key)
        }
        try store.validate(value: value, for: key)
        let owner = "lock-" + UUID().uuidString.lowercased()
        let stored = V2ValueCodec.encode(value, session: owner)
        let path = store.keySpace.path(key)
        let ttlText = String(ttlSeconds)
        while true {
            if Task.isCancelled { throw store.errors.make(.cancelled, "waiting for lock: cancelled", key: key) }
            let attempt = try await race(path: path, stored: stored, owner: owner, ttl: ttlText)
            switch attempt {
            case .held(let node, let sentAt):
                let hold = EtcdV2LockHold(
                    key: key, path: path, store: store, owner: owner, token: FencingToken(node.createdIndex),
                    index: node.modifiedIndex, ttlSeconds: ttlSeconds, sentAt: sentAt)
                if Task.isCancelled {
                    try? await hold.unlock()
                    throw store.errors.make(.cancelled, "waiting for lock: cancelled", key: key)
                }
                hold.startRefreshing()
                return hold
            case .retry:
                continue
            case .wait(let after):
                try await waitForRelease(path: path, after: after)
            }
        }
    }

    /// Holds the lock for the duration of `body`, then unlocks. If the hold is lost meanwhile,
    /// `body` is cancelled and this throws `lockLost` once it has returned.
    public func withLock<Result: Sendable>(
        _ body: @escaping @Sendable (EtcdV2LockHold) async throws -> Result
    ) async throws -> Result {
        let hold = try await lock()
        let outcome: Result?
        do {
            outcome = try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask { try await body(hold) }
                group.addTask {
                    await hold.waitUntilLost()
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch {
            try? await hold.unlock()
            if hold.isLost { throw store.errors.make(.lockLost, "the lock was lost while held", key: key) }
            throw error
        }
        guard let outcome else {
            throw store.errors.make(.lockLost, "the lock was lost while held", key: key)
        }
        try await hold.unlock()
        return outcome
    }

    enum Attempt {
        case held(V2Node, sentAt: ContinuousClock.Instant)
        /// Someone holds it: wait for a release after this etcd index.
        case wait(after: UInt64)
        case retry
    }

    /// One round of create, then compare-and-swap.
    private func race(path: String, stored: String, owner: String, ttl: String) async throws(CoordinationError)
        -> Attempt
    {
        let sentAt = ContinuousClock.now
        var created: V2Node?
        do throws(CoordinationError) {
            let reply = try await store.send(
                .put, path, query: [("prevExist", "false"), ("ttl", ttl)], value: stored, operation: "lock (create)",
                key: key)
            switch reply {
            case .success(let response, _):
                created = response.node
            case .failure(let body) where body.errorCode == V2ErrorCode.nodeExists:
                created = nil
            case .failure(let body):
                throw store.errors.etcd(body, "lock (create)", key: key)
            }
        } catch  where error.code == .connectionFailed || error.code == .timeout {
            // The create may have landed without us hearing of it: only the owner token can tell.
            return try await recover(path: path, owner: owner)
        }
        // The swap: on the index the create returned for its creator; for the others on an index
        // that cannot match, which fails and tells them the index to watch after.
        let prevIndex = created.map { String($0.modifiedIndex) } ?? String(UInt64.max)
        do throws(CoordinationError) {
            let reply = try await store.send(
                .put, path, query: [("prevIndex", prevIndex), ("ttl", ttl)], value: stored, operation: "lock (swap)",
                key: key)
            switch reply {
            case .success(let response, _):
                return .held(response.node, sentAt: sentAt)
            case .failure(let body) where body.errorCode == V2ErrorCode.testFailed:
                if created != nil { return .retry }  // ours expired or was deleted and re-created
                return .wait(after: body.index ?? 0)
            case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
                return .retry  // released between our create and our swap
            case .failure(let body):
                throw store.errors.etcd(body, "lock (swap)", key: key)
            }
        } catch  where error.code == .connectionFailed || error.code == .timeout {
            return try await recover(path: path, owner: owner)
        }
    }

    /// After a connection error: read the key back and hold it only if it carries our owner token.
    func recover(path: String, owner: String) async throws(CoordinationError) -> Attempt {
        let sentAt = ContinuousClock.now
        let reply = try await store.send(.get, path, operation: "lock (read back)", key: key)
        switch reply {
        case .success(let response, let index):
            guard V2ValueCodec.decode(response.node.value ?? "").session == owner else { return .wait(after: index) }
            // Ours: make sure of it with a swap on what we read (this also restarts its TTL).
            let swap = try await store.send(
                .put, path, query: [("prevIndex", String(response.node.modifiedIndex)), ("ttl", String(ttlSeconds))],
                value: response.node.value ?? "", operation: "lock (swap)", key: key)
            if case .success(let swapped, _) = swap { return .held(swapped.node, sentAt: sentAt) }
            return .retry
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            return .retry
        case .failure(let body):
            throw store.errors.etcd(body, "lock (read back)", key: key)
        }
    }

    /// Watches the key from the index after `after` until it is deleted or expires.
    private func waitForRelease(path: String, after: UInt64) async throws(CoordinationError) {
        var waitIndex = after + 1
        while true {
            if Task.isCancelled { throw store.errors.make(.cancelled, "waiting for lock: cancelled", key: key) }
            let reply: V2Reply
            do throws(CoordinationError) {
                reply = try await store.send(
                    .get, path, query: [("wait", "true"), ("waitIndex", String(waitIndex))],
                    timeout: store.configuration.watchPollTimeout, operation: "lock (watch)", key: key)
            } catch  where error.code == .timeout {
                continue  // a quiet poll: ask again from the same index
            }
            switch reply {
            case .success(let response, _):
                switch response.action {
                case "delete", "compareAndDelete", "expire":
                    return
                default:
                    waitIndex = response.node.modifiedIndex + 1
                }
            case .failure(let body) where body.errorCode == V2ErrorCode.eventIndexCleared:
                return  // history gone: race again, which re-reads the state
            case .failure(let body):
                throw store.errors.etcd(body, "lock (watch)", key: key)
            }
        }
    }
}

/// A held ``EtcdV2Lock``: its fencing token, its refreshes, and how it ends.
public final class EtcdV2LockHold: Sendable {
    public enum State: Sendable, Hashable {
        case held
        /// The key changed, vanished or went unrefreshed for a TTL.
        case lost
        case released
    }

    public let key: Key
    /// The key's createdIndex: larger for every later holder.
    public let token: FencingToken
    private let path: String
    private let store: EtcdV2Store
    private let owner: String
    private let ttlSeconds: Int64
    private let broadcast = StateBroadcast<State>(.held, isTerminal: { $0 != .held })
    private let stop = WakeSignal()
    /// Set once the refresh loop has returned: unlock waits for it, so no refresh is in flight
    /// when it reads the index to compare-and-delete on.
    private let loopDone = StateBroadcast<Bool>(false, isTerminal: { $0 })
    private struct Progress {
        var index: UInt64
        var lastAckedSend: ContinuousClock.Instant
        var refreshing = true
    }
    private let progress: Mutex<Progress>

    init(
        key: Key, path: String, store: EtcdV2Store, owner: String, token: FencingToken, index: UInt64,
        ttlSeconds: Int64, sentAt: ContinuousClock.Instant
    ) {
        self.key = key
        self.path = path
        self.store = store
        self.owner = owner
        self.token = token
        self.ttlSeconds = ttlSeconds
        self.progress = Mutex(Progress(index: index, lastAckedSend: sentAt))
    }

    /// The current state.
    public var state: State { broadcast.value }
    public var isLost: Bool { broadcast.value == .lost }

    /// Returns once the hold has ended (lost or released).
    public func waitUntilLost() async {
        _ = await broadcast.wait(until: { $0 != .held })
    }

    /// Releases the lock: compare-and-delete of the key on the index this holder last wrote. The
    /// key is gone afterwards. Throws `lockLost` if the hold had already been lost.
    public func unlock() async throws(CoordinationError) {
        guard broadcast.value == .held else {
            if broadcast.value == .lost {
                throw store.errors.make(.lockLost, "unlock: the lock had already been lost", key: key)
            }
            return
        }
        progress.withLock { $0.refreshing = false }
        stop.signal()
        // Let a refresh in flight land first (bounded: the loop may never have started if the
        // store is not running).
        let bound = store.configuration.requestTimeout + .seconds(1)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = await self.loopDone.wait(until: { $0 }) }
            group.addTask { try? await Task.sleep(for: bound) }
            await group.next()
            group.cancelAll()
        }
        for _ in 0..<3 {
            let index = progress.withLock { $0.index }
            let reply = try await store.send(
                .delete, path, query: [("prevIndex", String(index))], operation: "unlock", key: key)
            switch reply {
            case .success:
                broadcast.set(.released)
                return
            case .failure(let body) where body.errorCode == V2ErrorCode.testFailed:
                // A refresh whose answer we never got may have landed: if the key is still ours,
                // try again on its current index.
                if let current = try await ownCurrentIndex(), current != index {
                    acknowledge(index: current, sentAt: nil)
                    continue
                }
                broadcast.set(.lost)
                throw store.errors.make(.notHolder, "unlock: the key was changed by someone else", key: key)
            case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
                broadcast.set(.lost)
                throw store.errors.make(.lockLost, "unlock: the key had expired or was deleted", key: key)
            case .failure(let body):
                throw store.errors.etcd(body, "unlock", key: key)
            }
        }
        broadcast.set(.lost)
        throw store.errors.make(.notHolder, "unlock: the key kept changing", key: key)
    }

    /// Stops refreshing without deleting the key, exactly as a crashed holder would: the key
    /// expires one TTL later. For failure drills.
    public func abandon() {
        progress.withLock { $0.refreshing = false }
        stop.signal()
    }

    func startRefreshing() {
        let submitted = store.runner.submit { await self.refreshLoop() }
        if !submitted {
            broadcast.set(.lost)
            loopDone.set(true)
        }
    }

    /// Every third of the TTL, a CAS refresh on the index we last wrote. Lost when the key was
    /// changed by someone else or vanished, or when a whole TTL has passed since the last
    /// acknowledged refresh was sent. Requests are never cancelled half-way by unlock (it waits).
    private func refreshLoop() async {
        defer { loopDone.set(true) }
        let ttl = Duration.seconds(ttlSeconds)
        let interval = ttl / 3
        var next = ContinuousClock.now + interval
        while !Task.isCancelled {
            let expiry = progress.withLock { $0.lastAckedSend } + ttl
            let wakeAt = min(next, expiry)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(until: wakeAt, clock: .continuous) }
                group.addTask { await self.stop.wait() }
                await group.next()
                group.cancelAll()
            }
            guard progress.withLock({ $0.refreshing }), broadcast.value == .held, !Task.isCancelled else { return }
            if ContinuousClock.now >= expiry {
                broadcast.set(.lost)
                return
            }
            let sentAt = ContinuousClock.now
            let index = progress.withLock { $0.index }
            do {
                let reply = try await store.send(
                    .put, path,
                    query: [
                        ("refresh", "true"), ("prevExist", "true"), ("prevIndex", String(index)),
                        ("ttl", String(ttlSeconds)),
                    ],
                    timeout: max(interval * 2, .seconds(1)), operation: "lock (refresh)", key: key)
                switch reply {
                case .success(let response, _):
                    acknowledge(index: response.node.modifiedIndex, sentAt: sentAt)
                    next = sentAt + interval
                case .failure(let body) where body.errorCode == V2ErrorCode.testFailed:
                    // Perhaps our own earlier refresh landed after we stopped waiting for it: the
                    // key is still ours if it is the same incarnation with our owner token.
                    if let current = try await ownCurrentIndex() {
                        acknowledge(index: current, sentAt: nil)
                        next = ContinuousClock.now
                    } else {
                        broadcast.set(.lost)
                        return
                    }
                case .failure:
                    broadcast.set(.lost)  // gone (100) or refused
                    return
                }
            } catch {
                next = ContinuousClock.now + interval / 2  // try again soon; expiry stays put
            }
        }
    }

    private func acknowledge(index: UInt64, sentAt: ContinuousClock.Instant?) {
        progress.withLock {
            $0.index = index
            if let sentAt { $0.lastAckedSend = max($0.lastAckedSend, sentAt) }
        }
    }

    /// The key's current index if it is still this hold's key (same createdIndex, our owner token).
    private func ownCurrentIndex() async throws(CoordinationError) -> UInt64? {
        let reply = try await store.send(.get, path, operation: "lock (read back)", key: key)
        guard case .success(let response, _) = reply, response.node.createdIndex == token.value,
            V2ValueCodec.decode(response.node.value ?? "").session == owner
        else { return nil }
        return response.node.modifiedIndex
    }
}
