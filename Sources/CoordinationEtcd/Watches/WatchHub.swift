#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CoordinationCore
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwiftProtobuf
import Synchronization

/// Multiplexes every watch of one store onto a single `Watch` stream, with client-chosen watch ids.
///
/// Each watch remembers the next revision it needs; when the stream is reopened (a member died,
/// the connection broke) every watch is re-created from that revision, so nothing is missed. If etcd
/// has compacted that revision away, the watch says so with a fresh snapshot marked
/// `historyLost` and continues from there.
final class WatchHub: Sendable {
    typealias Client = Etcdserverpb_Watch.Client<HTTP2ClientTransport.Posix>
    /// Reads the current state of a range: entries and the revision they were read at.
    typealias Snapshotter = @Sendable (_ key: [UInt8], _ rangeEnd: [UInt8]) async throws -> ([Entry], Int64)

    struct Watcher: Sendable {
        let continuation: WatchStream.Continuation
        let key: [UInt8]
        /// Empty for a single key.
        let rangeEnd: [UInt8]
        var nextRevision: Int64
    }

    private struct State {
        var watchers: [Int64: Watcher] = [:]
        var nextID: Int64 = 1
        var outbox: AsyncStream<Etcdserverpb_WatchRequest>.Continuation?
        var closed = false
    }

    private let state = Mutex(State())
    private let keySpace: EtcdKeySpace
    private let errors: EtcdErrorMapper
    private let logger: Logger
    private let reconnectDelay: Duration

    init(keySpace: EtcdKeySpace, errors: EtcdErrorMapper, logger: Logger, reconnectDelay: Duration = .milliseconds(200)) {
        self.keySpace = keySpace
        self.errors = errors
        self.logger = logger
        self.reconnectDelay = reconnectDelay
    }

    /// Registers a watch that continues after the snapshot taken at `snapshotRevision`.
    func add(key: [UInt8], rangeEnd: [UInt8], after snapshotRevision: Int64, continuation: WatchStream.Continuation) {
        let id: Int64? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            let watcher = Watcher(continuation: continuation, key: key, rangeEnd: rangeEnd, nextRevision: snapshotRevision + 1)
            state.watchers[id] = watcher
            state.outbox?.yield(Self.create(id, watcher))
            return id
        }
        guard let id else {
            continuation.fail(errors.make(.storeClosed, "the store was closed"))
            return
        }
        continuation.onTermination { [weak self] in self?.remove(id) }
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
        for watcher in watchers { watcher.continuation.fail(failure) }
    }

    /// Keeps the shared stream open until cancelled.
    func run(client: Client, snapshot: @escaping Snapshotter) async {
        while !Task.isCancelled {
            let (requests, outbox) = AsyncStream<Etcdserverpb_WatchRequest>.makeStream()
            state.withLock { state in
                state.outbox = outbox
                for (id, watcher) in state.watchers { outbox.yield(Self.create(id, watcher)) }
            }
            do {
                var options = CallOptions.defaults
                options.waitForReady = true
                try await client.watch(options: options) { writer in
                    for await request in requests { try await writer.write(request) }
                } onResponse: { response in
                    for try await message in response.messages {
                        await self.handle(message, snapshot: snapshot)
                    }
                }
            } catch {
                if !Task.isCancelled {
                    logger.info("watch stream failed; reopening", metadata: ["error": "\(error)"])
                }
            }
            state.withLock { $0.outbox = nil }
            outbox.finish()
            if Task.isCancelled { return }
            try? await Task.sleep(for: reconnectDelay)
        }
    }

    private static func create(_ id: Int64, _ watcher: Watcher) -> Etcdserverpb_WatchRequest {
        .with {
            $0.createRequest = .with { create in
                create.key = Data(watcher.key)
                create.rangeEnd = Data(watcher.rangeEnd)
                create.startRevision = watcher.nextRevision
                create.watchID = id
            }
        }
    }

    private func handle(_ response: Etcdserverpb_WatchResponse, snapshot: Snapshotter) async {
        let id = response.watchID
        if response.compactRevision > 0 {
            await resnapshot(id, snapshot: snapshot, compactedAt: response.compactRevision)
            return
        }
        if response.canceled {
            let watcher = state.withLock { $0.watchers.removeValue(forKey: id) }
            watcher?.continuation.fail(
                errors.make(.serverError, "etcd cancelled the watch: \(response.cancelReason.isEmpty ? "no reason given" : response.cancelReason)")
            )
            return
        }
        guard !response.events.isEmpty else { return }  // created / progress
        // Deliver under the lock so that nextRevision and delivery cannot be reordered by a reconnect.
        let gone: Bool = state.withLock { state in
            guard var watcher = state.watchers[id] else { return false }
            for event in response.events {
                watcher.nextRevision = max(watcher.nextRevision, event.kv.modRevision + 1)
                guard let mapped = map(event) else { continue }
                if !watcher.continuation.yield(mapped) { return true }
            }
            state.watchers[id] = watcher
            return false
        }
        if gone { remove(id) }
    }

    /// Answers a compaction: a fresh snapshot marked `historyLost`, then the watch continues from it.
    private func resnapshot(_ id: Int64, snapshot: Snapshotter, compactedAt: Int64) async {
        guard let watcher = state.withLock({ $0.watchers[id] }) else { return }
        logger.info("watch history compacted; taking a fresh snapshot", metadata: ["compactRevision": "\(compactedAt)"])
        do {
            let (entries, revision) = try await snapshot(watcher.key, watcher.rangeEnd)
            state.withLock { state in
                guard var current = state.watchers[id] else { return }
                current.continuation.yield(
                    .snapshot(WatchSnapshot(entries: entries, revision: Revision(UInt64(revision)), historyLost: true))
                )
                current.nextRevision = revision + 1
                state.watchers[id] = current
                state.outbox?.yield(Self.create(id, current))
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
