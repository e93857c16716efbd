@_spi(Backend) import CoordinationCore
import CoordinationNIO
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

// Watches on the store's one watch stream (WatchHub), and waits for a key to go (KeyFollowers).
extension EtcdStore {
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(key, start: keySpace.bytes(key), end: [])
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        let (start, end) = keySpace.subtree(prefix)
        return try await startWatch(prefix, start: start, end: end)
    }

    /// Watch first, then the snapshot at exactly the revision the watch starts after: the watch is
    /// served live by etcd (no catch-up delay), and nothing between snapshot and changes is missed.
    func startWatch(_ key: Key, start: [UInt8], end: [UInt8]) async throws(CoordinationError) -> WatchStream {
        if closed.load(ordering: .acquiring) {
            throw errors.make(.storeClosed, "the store was closed", key: key)
        }
        let (stream, continuation) = WatchStream.makeStream()
        let watch: (id: Int64, revision: Int64)
        do {
            _ = try await streamMetadata()  // a login failure surfaces here, not as a watch timeout
            watch = try await watches.addLive(
                key: start, rangeEnd: end, continuation: continuation, timeout: configuration.requestTimeout)
        } catch {
            let mapped = errors.map(error, "watch", key: key)
            if mapped.code == .timeout, let reason = await transport.unreachableReason() {
                throw errors.make(.connectionFailed, "watch: no etcd member could be reached (\(reason))", key: key)
            }
            throw mapped
        }
        do {
            /// The range at `revision` (0: the current one).
            func read(at revision: Int64, serializable: Bool) async throws(CoordinationError)
                -> Etcdserverpb_RangeResponse
            {
                try await call(
                    "watch", key: key, .range,
                    .with {
                        $0.key = Data(start)
                        $0.rangeEnd = Data(end)
                        $0.revision = revision
                        $0.serializable = serializable
                    })
            }
            var response: Etcdserverpb_RangeResponse
            var revision = watch.revision
            do {
                // Serializable: the member that started the watch has that revision applied. If
                // the connection moved to a member behind it, read again linearizably.
                do {
                    response = try await read(at: watch.revision, serializable: true)
                } catch  where error.code != .historyLost && error.code != .cancelled && error.code != .storeClosed {
                    response = try await read(at: watch.revision, serializable: false)
                }
            } catch  where error.code == .historyLost {
                // Compacted between the watch's start and this read: take the current state
                // instead; the watch drops the events that the later snapshot already holds.
                response = try await read(at: 0, serializable: false)
                revision = response.header.revision
            }
            let entries = response.kvs.compactMap { kv in keySpace.key(kv.key).map { EtcdEntries.entry(kv, key: $0) } }
                .sorted { $0.key < $1.key }
            watches.deliverSnapshot(watch.id, WatchSnapshot(entries: entries, revision: Revision(UInt64(revision))))
        } catch {
            watches.fail(watch.id, error)
            throw error
        }
        return stream
    }
}

// MARK: - Hooks for the tests (reached with @testable import)

extension EtcdStore {
    /// Makes every connection opened from now on start its stream ids at `id` (odd) and retire
    /// past `retirement`, so that a test reaches the end of the 2^31 ids in a few calls.
    func startStreamIDs(at id: Int, retiringAfter retirement: Int) async {
        let transport = self.transport
        _ = try? await transport.eventLoop.submit {
            transport.firstStreamID = id
            transport.retirementStreamID = retirement
        }.get()
    }

    /// How many connections the store has opened so far.
    func connectionsOpened() async -> Int {
        let transport = self.transport
        return (try? await transport.eventLoop.submit { transport.connectionsOpened }.get()) ?? 0
    }

    /// A watch of `key` that resumes after `revision` as a watch does after a reconnect (no snapshot
    /// of its own); if etcd has compacted that revision away, the watch answers with a fresh
    /// snapshot marked `historyLost`.
    func watchResuming(_ key: Key, after revision: Revision) throws(CoordinationError) -> WatchStream {
        let (stream, continuation) = WatchStream.makeStream()
        try watches.addResuming(
            key: keySpace.bytes(key), rangeEnd: [], after: Int64(revision.value), continuation: continuation)
        return stream
    }

    /// Compacts etcd's history up to `revision` (physically, so watches from before it are refused).
    func compact(through revision: Revision) async throws(CoordinationError) {
        _ = try await call(
            "compact", .compact,
            .with {
                $0.revision = Int64(revision.value)
                $0.physical = true
            })
    }
}
