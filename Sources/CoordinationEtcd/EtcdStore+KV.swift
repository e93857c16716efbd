@_spi(Backend) import CoordinationCore
import CoordinationNIO
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

// The key/value calls: each one a unary KV call or one `Txn`.
extension EtcdStore {
    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        let response = try await call("get", key: key, .range, .with { $0.key = Data(keySpace.bytes(key)) })
        return response.kvs.first.map { EtcdEntries.entry($0, key: key) }
    }

    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        let response = try await call(
            "exists", key: key, .range,
            .with {
                $0.key = Data(keySpace.bytes(key))
                $0.countOnly = true
            })
        return response.count > 0
    }

    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        try validate(value: value, for: key)
        let lease = try leaseID(options.session, key: key)
        _ = try await call(
            "put", key: key, .put,
            .with {
                $0.key = Data(keySpace.bytes(key))
                $0.value = Data(value)
                $0.lease = lease
            })
    }

    public func delete(_ key: Key) async throws(CoordinationError) {
        _ = try await call("delete", key: key, .deleteRange, .with { $0.key = Data(keySpace.bytes(key)) })
    }

    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] {
        let (start, end) = keySpace.subtree(prefix)
        let response = try await call(
            "list", key: prefix, .range,
            .with {
                $0.key = Data(start)
                $0.rangeEnd = Data(end)
            })
        return response.kvs.compactMap { kv in keySpace.key(kv.key).map { EtcdEntries.entry(kv, key: $0) } }
            .sorted { $0.key < $1.key }
    }

    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        let (start, end) = keySpace.subtree(prefix)
        // The key itself and its subtree in one transaction: one revision, all or nothing.
        _ = try await call(
            "deleteTree", key: prefix, .txn,
            .with {
                $0.success = [.delete(Data(keySpace.bytes(prefix))), .delete(Data(start), rangeEnd: Data(end))]
            })
    }

    public func atomicPut(
        _ key: Key,
        _ value: [UInt8],
        condition: PutCondition,
        options: PutOptions
    ) async throws(CoordinationError) -> Entry {
        try validate(value: value, for: key)
        let lease = try leaseID(options.session, key: key)
        let bytes = Data(keySpace.bytes(key))
        let compare: Etcdserverpb_Compare
        switch condition {
        case .absent: compare = .absent(bytes)
        case .revision(let revision): compare = .modified(bytes, at: Int64(revision.value))
        }
        // One Txn: write if the condition holds, otherwise read the key so the error can say why.
        let response = try await call(
            "atomicPut", key: key, .txn,
            .with {
                $0.compare = [compare]
                $0.success = [.put(bytes, Data(value), lease: lease, previous: true)]
                $0.failure = [.range(bytes)]
            })
        if response.succeeded {
            let revision = Revision(UInt64(response.header.revision))
            let previous = response.responses.first?.responsePut.prevKv
            let created = previous.map { $0.createRevision > 0 } ?? false
            return Entry(
                key: key,
                value: value,
                createRevision: created ? Revision(UInt64(previous!.createRevision)) : revision,
                modifyRevision: revision,
                session: lease == 0 ? nil : SessionID(leaseID: lease)
            )
        }
        let current = response.responses.first?.responseRange.kvs.first
        switch condition {
        case .absent:
            throw errors.make(.keyExists, "create failed: the key already exists", key: key)
        case .revision(let expected):
            guard let current else {
                throw errors.make(.keyNotFound, "compare-and-set failed: the key does not exist", key: key)
            }
            throw errors.make(
                .revisionMismatch,
                "compare-and-set failed: expected revision \(expected), found \(current.modRevision)",
                key: key
            )
        }
    }

    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        let bytes = Data(keySpace.bytes(key))
        let response = try await call(
            "atomicDelete", key: key, .txn,
            .with {
                $0.compare = [.modified(bytes, at: Int64(revision.value))]
                $0.success = [.delete(bytes)]
                $0.failure = [.range(bytes)]
            })
        guard !response.succeeded else { return }
        guard let current = response.responses.first?.responseRange.kvs.first else {
            throw errors.make(.keyNotFound, "compare-and-delete failed: the key does not exist", key: key)
        }
        throw errors.make(
            .revisionMismatch,
            "compare-and-delete failed: expected revision \(revision), found \(current.modRevision)",
            key: key
        )
    }
}
