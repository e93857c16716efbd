@_spi(Backend) import CoordinationCore
import Foundation
import SwiftProtobuf
import Synchronization

extension EtcdStore {
    /// The line on etcd, as etcd's concurrency package lays it out: contenders are
    /// `prefix/<lease id in hex>`, bound to the session's lease, first in line by create revision
    /// (so `etcdctl lock` / `etcdctl elect` and Go's `Mutex` / `Election` share the line).
    public struct Line: ContenderLine {
        public let store: EtcdStore

        /// One `Txn`, as etcd's own `Mutex.Lock`: create `prefix/<lease>` if absent, and in the same
        /// transaction read the two contenders created last (the new one and the one just ahead of
        /// it) and the size of the line, so a waiter knows whom to wait for without reading the
        /// whole line.
        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            try await runToCompletion(on: store.executor) { () async throws(CoordinationError) in
                try await self.create(prefix, value: value, session: session)
            }
        }

        private func create(_ prefix: Key, value: [UInt8], session: Session) async throws(CoordinationError)
            -> LineJoin
        {
            let key = try prefix.appending(session.id.rawValue)
            try store.validate(value: value, for: key)
            let lease = try store.leaseID(session, key: key)
            let bytes = Data(store.keySpace.bytes(key))
            let (start, end) = store.keySpace.subtree(prefix)
            let response = try await store.call(
                "joinLine", key: key, .txn,
                .with {
                    $0.compare = [.absent(bytes)]
                    $0.success = [
                        .put(bytes, Data(value), lease: lease), .lastCreated(Data(start), Data(end), limit: 2),
                    ]
                })
            guard response.succeeded else {
                throw store.errors.make(
                    .keyExists, "session \(session.id) already has a contender under '\(prefix)'", key: key)
            }
            let revision = Revision(UInt64(response.header.revision))
            let me = Contender(
                key: key,
                order: revision,
                createRevision: revision,
                modifyRevision: revision,
                session: session.id,
                value: value
            )
            // Newest first: our own key (created by this Txn, so the newest), then the one just ahead.
            let newest = response.responses.count > 1 ? response.responses[1].responseRange : .init()
            if newest.kvs.contains(where: { store.keySpace.key($0.key).map { !$0.isChild(of: prefix) } ?? true }) {
                // A key nested below the line's name stands among the newest: it is no contender,
                // and it must neither hide one nor block the line. Read the place past it.
                return LineJoin(contender: me, place: try await place(of: me, in: prefix))
            }
            guard let ahead = contendersIn(newest, under: prefix).first(where: { $0.key != key }) else {
                return LineJoin(contender: me, place: .first)
            }
            return LineJoin(contender: me, place: .behind(.init(ahead)))
        }

        /// One read-only `Txn`: is `contender` still in line, and who is just ahead of it (the
        /// newest key created before it that is a contender).
        ///
        /// The read is serializable (answered by the member from what it has applied, without a
        /// raft round): a waiter asks after its watch — on the same connection, so the same member —
        /// said the one ahead is gone, and that member has applied everything up to that event, the
        /// contender's own creation included. Only "not in line any more" is checked again with a
        /// linearizable read before it is believed (the connection may have moved to a member that
        /// is behind).
        public func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace? {
            if let place = try await readPlace(of: contender, in: prefix, serializable: true) { return place }
            return try await readPlace(of: contender, in: prefix, serializable: false)
        }

        private func readPlace(of contender: Contender, in prefix: Key, serializable: Bool)
            async throws(CoordinationError) -> LinePlace?
        {
            let (start, end) = store.keySpace.subtree(prefix)
            let own = Data(store.keySpace.bytes(contender.key))
            let created = Int64(contender.createRevision.value)
            let response = try await store.call(
                "place", key: contender.key, .txn,
                .with {
                    $0.success = [
                        .range(own, serializable: serializable),
                        .lastCreated(
                            Data(start), Data(end), limit: 2, createdBefore: created, serializable: serializable),
                    ]
                })
            guard response.responses.count == 2,
                let current = response.responses[0].responseRange.kvs.first, current.createRevision == created
            else { return nil }
            var page = response.responses[1].responseRange
            var ahead = contendersIn(page, under: prefix)
            // Keys nested below the line's name are read past, never counted: a line read this way
            // is never shorter than it is (a stray key among the newest cannot hide the contender
            // behind it), and a stray key never blocks it. Contenders are never created before an
            // existing one, so a later page (at a later revision) misses none of them.
            while ahead.isEmpty, page.more, let oldest = page.kvs.map(\.createRevision).min() {
                let next = try await store.call(
                    "place", key: contender.key, .txn,
                    .with {
                        $0.success = [
                            .lastCreated(
                                Data(start), Data(end), limit: 8, createdBefore: oldest, serializable: serializable)
                        ]
                    })
                guard let range = next.responses.first?.responseRange else { break }
                page = range
                ahead += contendersIn(page, under: prefix)
            }
            guard let predecessor = ahead.first else { return .first }
            return .behind(.init(predecessor))
        }

        private func contendersIn(_ range: Etcdserverpb_RangeResponse, under prefix: Key) -> [Contender] {
            range.kvs.compactMap { kv -> Contender? in
                guard let key = store.keySpace.key(kv.key), key.isChild(of: prefix) else { return nil }
                return Contender(entry: EtcdEntries.entry(kv, key: key))
            }
        }

        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            let (start, end) = store.keySpace.subtree(prefix)
            let response = try await store.call(
                "contenders", key: prefix, .range,
                .with {
                    $0.key = Data(start)
                    $0.rangeEnd = Data(end)
                    $0.sortTarget = .create
                    $0.sortOrder = .ascend
                })
            return contendersIn(response, under: prefix)
        }
    }

    public var line: Line { Line(store: self) }
}

extension EtcdStore {
    /// A waiter's wait for the contender ahead of it: on a watch of that key kept open across
    /// waits (`KeyFollowers`), so the wait never starts on a watch that etcd registered as
    /// behind, and usually costs no request.
    public func waitUntilGone(_ key: Key, createdAt createRevision: Revision?, session: SessionID?)
        async throws(CoordinationError)
    {
        guard let createRevision else {
            // Not named by its creation: the generic wait on a watch of its own.
            do {
                return try await waitUntilGoneOnWatch(key, createdAt: nil, session: session)
            } catch {
                throw errors.map(error, "waitUntilGone", key: key)
            }
        }
        if closed.load(ordering: .acquiring) {
            throw errors.make(.storeClosed, "the store was closed", key: key)
        }
        do {
            try await followers.waitUntilGone(key, createdAt: createRevision, session: session) {
                [weak self] key throws(CoordinationError) in
                guard let self else { throw CoordinationError(.storeClosed, "the store was closed") }
                return try await self.watch(key)
            }
        } catch {
            throw errors.map(error, "waitUntilGone", key: key)
        }
    }
}
