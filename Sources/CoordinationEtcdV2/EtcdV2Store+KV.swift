import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

// The key/value calls over the v2 keys API (`/v2/keys`), with its CAS conditions.
extension EtcdV2Store {
    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        let reply = try await send(.get, keySpace.path(key), operation: "get", key: key)
        switch reply {
        case .success(let response, _):
            // A directory is not a key: it has no value, so there is no entry.
            return response.node.isDirectory ? nil : EtcdV2Entries.entry(response.node, key: key)
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            return nil
        case .failure(let body):
            throw errors.etcd(body, "get", key: key)
        }
    }

    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        try await get(key) != nil
    }

    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        if options.isDirectory {
            try await makeDirectory(key, session: options.session)
            return
        }
        try validate(value: value, for: key)
        let ttl = try sessionTTL(options.session, key: key)
        let stored = V2ValueCodec.encode(value, session: options.session?.id.rawValue)
        if let session = options.session { try await recordBinding(session.id, key) }
        // A plain v2 `set` replaces the node and gives it a new createdIndex; an update of an existing
        // key (prevExist=true) keeps it. So: update, and create only when there is nothing to update.
        for attempt in 1...3 {
            for mustExist in [true, false] {
                var query = [("prevExist", mustExist ? "true" : "false")]
                if let ttl { query.append(("ttl", String(ttl))) }
                let reply = try await send(
                    .put, keySpace.path(key), query: query, value: stored, operation: "put", key: key)
                switch reply {
                case .success(let response, _):
                    try await track(key, node: response.node, session: options.session)
                    return
                case .failure(let body) where mustExist && body.errorCode == V2ErrorCode.keyNotFound:
                    continue  // nothing to update: create it
                case .failure(let body) where !mustExist && body.errorCode == V2ErrorCode.nodeExists && attempt < 3:
                    break  // created meanwhile by someone else: update it
                case .failure(let body):
                    throw errors.etcd(body, "put", key: key)
                }
                break
            }
        }
        throw errors.make(.serverError, "put: the key kept appearing and disappearing; gave up", key: key)
    }

    /// libkv's `IsDir`: an empty directory (bound to a session, it gets the session's TTL).
    func makeDirectory(_ key: Key, session: Session?) async throws(CoordinationError) {
        var query = [("dir", "true")]
        if let ttl = try sessionTTL(session, key: key) { query.append(("ttl", String(ttl))) }
        let reply = try await send(.put, keySpace.path(key), query: query, operation: "put (directory)", key: key)
        switch reply {
        case .success: return
        case .failure(let body) where body.errorCode == V2ErrorCode.notFile:
            // Already a directory: creating it again changes nothing.
            return
        case .failure(let body):
            throw errors.etcd(body, "put (directory)", key: key)
        }
    }

    public func delete(_ key: Key) async throws(CoordinationError) {
        let reply = try await send(.delete, keySpace.path(key), operation: "delete", key: key)
        switch reply {
        case .success:
            await untrack(key)
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            await untrack(key)
        case .failure(let body) where body.errorCode == V2ErrorCode.notFile:
            throw errors.make(
                .isADirectory, "delete: '\(key)' is a directory; remove it with deleteTree (etcd v2 rule)", key: key)
        case .failure(let body):
            throw errors.etcd(body, "delete", key: key)
        }
    }

    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] {
        let reply = try await send(
            .get, keySpace.path(prefix), query: [("recursive", "true"), ("sorted", "true")], operation: "list",
            key: prefix)
        switch reply {
        case .success(let response, _):
            guard response.node.isDirectory else { return [] }
            return response.node.leaves.compactMap { node -> Entry? in
                guard let key = keySpace.key(node.key), key.relative(to: prefix) != nil, key != prefix else {
                    return nil
                }
                return EtcdV2Entries.entry(node, key: key)
            }.sorted { $0.key < $1.key }
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            return []
        case .failure(let body):
            throw errors.etcd(body, "list", key: prefix)
        }
    }

    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        let reply = try await send(
            .delete, keySpace.path(prefix), query: [("recursive", "true")], operation: "deleteTree", key: prefix)
        switch reply {
        case .success:
            sessions.unbind(under: prefix)
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            sessions.unbind(under: prefix)
        case .failure(let body):
            throw errors.etcd(body, "deleteTree", key: prefix)
        }
    }

    public func atomicPut(
        _ key: Key,
        _ value: [UInt8],
        condition: PutCondition,
        options: PutOptions
    ) async throws(CoordinationError) -> Entry {
        try validate(value: value, for: key)
        let ttl = try sessionTTL(options.session, key: key)
        let stored = V2ValueCodec.encode(value, session: options.session?.id.rawValue)
        if let session = options.session { try await recordBinding(session.id, key) }
        var attempt = 0
        while true {
            attempt += 1
            var query: [(String, String)] = []
            var compared: UInt64 = 0
            switch condition {
            case .absent:
                query.append(("prevExist", "false"))
            case .revision(let revision):
                compared = sessions.resolve(key, revision: revision.value)
                query.append(("prevIndex", String(compared)))
            }
            if let ttl { query.append(("ttl", String(ttl))) }
            let reply = try await send(
                .put, keySpace.path(key), query: query, value: stored, operation: "atomicPut", key: key)
            switch reply {
            case .success(let response, _):
                try await track(key, node: response.node, session: options.session)
                return Entry(
                    key: key, value: value, createRevision: Revision(response.node.createdIndex),
                    modifyRevision: Revision(response.node.modifiedIndex), session: options.session?.id)
            case .failure(let body):
                // Our own refresh may have moved the index between resolving and sending: try again.
                if body.errorCode == V2ErrorCode.testFailed, case .revision(let revision) = condition, attempt < 3,
                    sessions.resolve(key, revision: revision.value) != compared
                {
                    continue
                }
                if body.errorCode == V2ErrorCode.nodeExists {
                    throw errors.make(.keyExists, "create failed: the key already exists", key: key)
                }
                throw errors.etcd(body, "atomicPut", key: key)
            }
        }
    }

    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        var attempt = 0
        while true {
            attempt += 1
            let compared = sessions.resolve(key, revision: revision.value)
            let reply = try await send(
                .delete, keySpace.path(key), query: [("prevIndex", String(compared))], operation: "atomicDelete",
                key: key)
            switch reply {
            case .success:
                await untrack(key)
                return
            case .failure(let body):
                if body.errorCode == V2ErrorCode.testFailed, attempt < 3,
                    sessions.resolve(key, revision: revision.value) != compared
                {
                    continue
                }
                throw errors.etcd(body, "atomicDelete", key: key)
            }
        }
    }
}
