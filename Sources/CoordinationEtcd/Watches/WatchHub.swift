@_spi(Backend) import CoordinationCore
import Logging
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Multiplexes every watch of one store onto a single `Watch` stream, with client-chosen watch ids.
///
/// Each watch remembers the next revision it needs; when the stream is reopened (a member died,
/// the connection broke) every watch is re-created from that revision, so nothing is missed. If etcd
/// has compacted that revision away, the watch says so with a fresh snapshot marked
/// `historyLost` and continues from there.
final class WatchHub: Sendable {
    /// Reads the current state of a range: entries and the revision they were read at.
    typealias Snapshotter = @Sendable (_ key: [UInt8], _ rangeEnd: [UInt8]) async throws -> ([Entry], Int64)

    struct Watcher: Sendable {
        let continuation: WatchStream.Continuation
        let key: [UInt8]
        /// Empty for a single key.
        let rangeEnd: [UInt8]
        /// The revision to resume from; 0 until the server has created a watch that starts "now".
        var nextRevision: Int64
        /// Events held back until the snapshot has been delivered (`nil` once it has).
        var pending: [WatchEvent]?
        /// Waits for the server's `created` answer, which carries the revision the watch starts after.
        var createdWaiter: CheckedContinuation<Int64, any Error>?
        /// Set while the server's answer to our own cancel of this id (sent before re-creating it
        /// after a compaction) is still to come: that `canceled` answer is expected, not a failure.
        var awaitingCancelAnswer = false
        /// The revision of the last snapshot delivered: events up to it are already in it.
        var snapshotRevision: Int64 = 0
    }

    private struct State {
        var watchers: [Int64: Watcher] = [:]
        var nextID: Int64 = 1
        var outbox: AsyncStream<Etcdserverpb_WatchRequest>.Continuation?
        /// Ids of the creates sent on the current stream and not yet answered, oldest first. etcd
        /// answers creates in order, and answers a refused one (permission denied, say) with watch
        /// id -1: the oldest unanswered create is the one it refused.
        var unansweredCreates: [Int64] = []
        var closed = false

        mutating func send(create id: Int64, _ watcher: Watcher) {
            guard let outbox else { return }
            unansweredCreates.append(id)
            outbox.yield(WatchHub.create(id, watcher))
        }
    }

    private let state = Mutex(State())
    private let keySpace: EtcdKeySpace
    private let errors: EtcdErrorMapper
    private let logger: Logger
    private let reconnectDelay: Duration

    init(keySpace: EtcdKeySpace, errors: EtcdErrorMapper, logger: Logger, reconnectDelay: Duration = .milliseconds(200))
    {
        self.keySpace = keySpace
        self.errors = errors
        self.logger = logger
        self.reconnectDelay = reconnectDelay
    }

    /// Starts a watch from "now" and returns its id and the revision it starts after, once the server
    /// has created it. A watch that starts at the current revision is served at once by etcd; one
    /// that starts at an older revision waits for etcd's catch-up loop (up to 100 ms). The caller then
    /// reads the snapshot at exactly that revision and hands it to ``deliverSnapshot(_:_:)``: events
    /// that arrive meanwhile are held back, so the stream is gap-free and in order.
    func addLive(key: [UInt8], rangeEnd: [UInt8], continuation: WatchStream.Continuation, timeout: Duration)
        async throws -> (id: Int64, revision: Int64)
    {
        let id: Int64? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            return id
        }
        guard let id else { throw errors.make(.storeClosed, "the store was closed") }
        continuation.onTermination { [weak self] in self?.remove(id) }
        let revision: Int64 = try await withThrowingTaskGroup(of: Int64?.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Int64, any Error>) in
                    self.state.withLock { state in
                        let watcher = Watcher(
                            continuation: continuation,
                            key: key,
                            rangeEnd: rangeEnd,
                            nextRevision: 0,
                            pending: [],
                            createdWaiter: waiter
                        )
                        state.watchers[id] = watcher
                        state.send(create: id, watcher)
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let revision = first else {
                let waiter = self.state.withLock { state -> CheckedContinuation<Int64, any Error>? in
                    defer { state.watchers[id]?.createdWaiter = nil }
                    return state.watchers[id]?.createdWaiter
                }
                waiter?.resume(throwing: self.errors.make(.timeout, "etcd did not create the watch in time"))
                self.remove(id)
                throw self.errors.make(.timeout, "etcd did not create the watch within \(timeout)")
            }
            return revision
        }
        return (id, revision)
    }

    /// Starts a watch that resumes after `revision` without a snapshot of its own, as a watch does
    /// after a reconnect. Used by the tests to reach the compaction path deterministically.
    func addResuming(key: [UInt8], rangeEnd: [UInt8], after revision: Int64, continuation: WatchStream.Continuation)
        throws(CoordinationError)
    {
        let id: Int64? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            let watcher = Watcher(
                continuation: continuation, key: key, rangeEnd: rangeEnd, nextRevision: revision + 1, pending: nil)
            state.watchers[id] = watcher
            state.send(create: id, watcher)
            return id
        }
        guard let id else { throw errors.make(.storeClosed, "the store was closed") }
        continuation.onTermination { [weak self] in self?.remove(id) }
    }

    /// Delivers the snapshot read at the watch's start revision, then the events held back meanwhile.
    func deliverSnapshot(_ id: Int64, _ snapshot: WatchSnapshot) {
        state.withLock { state in
            guard var watcher = state.watchers[id] else { return }
            watcher.continuation.yield(.snapshot(snapshot))
            watcher.snapshotRevision = Int64(snapshot.revision.value)
            for event in watcher.pending ?? [] where event.revision > snapshot.revision {
                watcher.continuation.yield(event)
            }
            watcher.pending = nil
            state.watchers[id] = watcher
        }
    }

    /// Fails one watch (its snapshot could not be read).
    func fail(_ id: Int64, _ error: CoordinationError) {
        let watcher = state.withLock { $0.watchers.removeValue(forKey: id) }
        watcher?.continuation.fail(error)
    }

    private func remove(_ id: Int64) {
        state.withLock { state in
            guard state.watchers.removeValue(forKey: id) != nil else { return }
            state.outbox?.yield(.with { $0.cancelRequest = .with { $0.watchID = id } })
        }
    }

    /// Fails every watch (the store is closing) and refuses new ones.
    func close() {
        let watchers = state.withLock { state in
            state.closed = true
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        let failure = errors.make(.storeClosed, "the store was closed")
        for watcher in watchers {
            watcher.createdWaiter?.resume(throwing: failure)
            watcher.continuation.fail(failure)
        }
    }

    /// Keeps the shared stream open until cancelled.
    func run(
        transport: EtcdTransport,
        snapshot: @escaping Snapshotter,
        metadata: @escaping @Sendable () async throws -> [(String, String)]
    ) async {
        var reopening = false
        while !Task.isCancelled {
            let (requests, outbox) = AsyncStream<Etcdserverpb_WatchRequest>.makeStream()
            var failure: (any Error)?
            do {
                let opening = try await metadata()
                let stream = try await transport.openStream(
                    "/etcdserverpb.Watch/Watch", metadata: opening,
                    requests: Etcdserverpb_WatchRequest.self, responses: Etcdserverpb_WatchResponse.self)
                let resumed = state.withLock { state in
                    state.outbox = outbox
                    state.unansweredCreates = []
                    for (id, var watcher) in state.watchers {
                        watcher.awaitingCancelAnswer = false  // a new stream has no old ids to cancel
                        state.watchers[id] = watcher
                        state.send(create: id, watcher)
                    }
                    return state.watchers.count
                }
                if reopening, resumed > 0 {
                    Telemetry.count(Telemetry.Metric.watchReconnects, [("backend", "etcd")], by: resumed)
                }
                reopening = true
                try await stream.exchange(requests) { message in
                    await self.handle(message, snapshot: snapshot)
                }
            } catch {
                failure = error
            }
            state.withLock { $0.outbox = nil }
            outbox.finish()
            if Task.isCancelled { return }
            await transport.pauseBeforeReopening("watch", after: failure, delay: reconnectDelay, logger: logger)
        }
    }

    fileprivate static func create(_ id: Int64, _ watcher: Watcher) -> Etcdserverpb_WatchRequest {
        .with {
            $0.createRequest = .with { create in
                create.key = Data(watcher.key)
                create.rangeEnd = Data(watcher.rangeEnd)
                create.startRevision = watcher.nextRevision  // 0: from now
                create.watchID = id
            }
        }
    }

    private func handle(_ response: Etcdserverpb_WatchResponse, snapshot: Snapshotter) async {
        if response.created {
            let answered = state.withLock { state -> Int64? in
                state.unansweredCreates.isEmpty ? nil : state.unansweredCreates.removeFirst()
            }
            if response.watchID == -1, let refused = answered {
                refuse(refused, reason: response.cancelReason)
                return
            }
        }
        let id = response.watchID
        if response.compactRevision > 0 {
            await resnapshot(id, snapshot: snapshot, compactedAt: response.compactRevision)
            return
        }
        if response.canceled {
            let expected = state.withLock { state -> Bool in
                guard var watcher = state.watchers[id], watcher.awaitingCancelAnswer else { return false }
                watcher.awaitingCancelAnswer = false
                state.watchers[id] = watcher
                return true
            }
            if expected { return }
            let watcher = state.withLock { $0.watchers.removeValue(forKey: id) }
            watcher?.continuation.fail(
                errors.make(
                    .serverError,
                    "etcd cancelled the watch: \(response.cancelReason.isEmpty ? "no reason given" : response.cancelReason)"
                )
            )
            return
        }
        if response.created {
            let waiter = state.withLock { state -> CheckedContinuation<Int64, any Error>? in
                guard var watcher = state.watchers[id] else { return nil }
                if watcher.nextRevision == 0 { watcher.nextRevision = response.header.revision + 1 }
                let waiter = watcher.createdWaiter
                watcher.createdWaiter = nil
                state.watchers[id] = watcher
                return waiter
            }
            waiter?.resume(returning: response.header.revision)
        }
        guard !response.events.isEmpty else { return }  // created / progress
        // Deliver under the lock so that nextRevision and delivery cannot be reordered by a reconnect.
        let gone: Bool = state.withLock { state in
            guard var watcher = state.watchers[id] else { return false }
            for event in response.events {
                watcher.nextRevision = max(watcher.nextRevision, event.kv.modRevision + 1)
                guard event.kv.modRevision > watcher.snapshotRevision, let mapped = map(event) else { continue }
                if watcher.pending != nil {
                    watcher.pending!.append(mapped)
                } else if !watcher.continuation.yield(mapped) {
                    return true
                }
            }
            state.watchers[id] = watcher
            return false
        }
        if gone { remove(id) }
    }

    /// etcd refused to create watch `id`: fail its creation and its stream with a typed error.
    private func refuse(_ id: Int64, reason: String) {
        let watcher = state.withLock { $0.watchers.removeValue(forKey: id) }
        let code: CoordinationError.Code =
            reason.contains("permission denied")
            ? .permissionDenied
            : (reason.contains("token") || reason.contains("user name") ? .authenticationFailed : .serverError)
        let failure = errors.make(code, "etcd refused the watch: \(reason.isEmpty ? "no reason given" : reason)")
        watcher?.createdWaiter?.resume(throwing: failure)
        watcher?.continuation.fail(failure)
    }

    /// Answers a compaction: a fresh snapshot marked `historyLost`, then the watch continues from it.
    private func resnapshot(_ id: Int64, snapshot: Snapshotter, compactedAt: Int64) async {
        guard let watcher = state.withLock({ $0.watchers[id] }) else { return }
        logger.info("watch history compacted; taking a fresh snapshot", metadata: ["compactRevision": "\(compactedAt)"])
        do {
            let (entries, revision) = try await snapshot(watcher.key, watcher.rangeEnd)
            state.withLock { state in
                guard var current = state.watchers[id] else { return }
                Telemetry.count(Telemetry.Metric.historyLost, [("backend", "etcd")])
                current.continuation.yield(
                    .snapshot(WatchSnapshot(entries: entries, revision: Revision(UInt64(revision)), historyLost: true))
                )
                current.nextRevision = revision + 1
                // etcd keeps the id of a compacted watch registered until it is cancelled: cancel it
                // first, or the re-create is refused as a duplicate id. Both go out in this order.
                current.awaitingCancelAnswer = state.outbox != nil
                state.watchers[id] = current
                state.outbox?.yield(.with { $0.cancelRequest = .with { $0.watchID = id } })
                state.send(create: id, current)
            }
        } catch {
            let watcher = state.withLock { $0.watchers.removeValue(forKey: id) }
            watcher?.continuation.fail(errors.map(error, "re-reading a watched range after compaction"))
        }
    }

    private func map(_ event: Mvccpb_Event) -> WatchEvent? {
        guard let key = keySpace.key(event.kv.key) else { return nil }
        switch event.type {
        case .put:
            return .put(EtcdEntries.entry(event.kv, key: key))
        case .delete:
            return .deleted(Deletion(key: key, revision: Revision(UInt64(event.kv.modRevision)), reason: .unspecified))
        default:
            return nil
        }
    }
}

enum EtcdEntries {
    static func entry(_ kv: Mvccpb_KeyValue, key: Key) -> Entry {
        Entry(
            key: key,
            value: Array(kv.value),
            createRevision: Revision(UInt64(kv.createRevision)),
            modifyRevision: Revision(UInt64(kv.modRevision)),
            session: kv.lease == 0 ? nil : SessionID(leaseID: kv.lease)
        )
    }
}
