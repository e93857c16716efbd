@_spi(Backend) import CoordinationCore
import Synchronization

/// Keys as znodes: reads, writes, conditional writes, subtrees.
extension ZooKeeperStore {
    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        let path = try paths.path(key)
        guard let current = try await read(path, key: key, try await primary(), operation: "get"),
            let data = current.data
        else { return nil }
        return entry(key, data, current.stat)
    }

    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        // `exists` cannot tell a parent-only znode (null data) from an empty value: read the data.
        try await get(key) != nil
    }

    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        try validate(value: value, for: key)
        let path = try paths.path(key)
        if let session = options.session {
            let client = try client(for: session)
            _ = try await write(path, key: key, value: value, owner: session.id, client: client, operation: "put")
        } else {
            _ = try await write(path, key: key, value: value, owner: nil, client: try await primary(), operation: "put")
        }
    }

    /// Writes `value` at `path` as a znode owned by `owner` (ephemeral) or by nobody (persistent),
    /// whatever was there: a znode of the wrong kind is replaced in one `multi`.
    func write(
        _ path: String, key: Key, value: [UInt8], owner: SessionID?, client: ZooKeeperClient, operation: String
    ) async throws(CoordinationError) -> Entry {
        let mode: CreateMode = owner == nil ? .persistent : .ephemeral
        for _ in 0..<8 {
            do {
                if owner == nil {
                    // Overwriting is the common case: one request.
                    let reply = try await client.send(.setData(path: path, data: value, version: -1))
                    guard case .stat(let stat) = reply.response else { continue }
                    if ZooKeeperPaths.owner(stat.ephemeralOwner) == nil { return entry(key, value, stat) }
                    if let replaced = try await replace(path, key: key, value: value, mode: mode, stat: stat, client) {
                        return replaced
                    }
                } else {
                    let reply = try await client.send(.create(path: path, data: value, acl: nodeACL, mode: mode))
                    guard case .created(_, let stat) = reply.response else { continue }
                    return entry(key, value, stat)
                }
            } catch  where error.zooKeeperCode == .noNode {
                if let created = try await createWithParents(path, key: key, value: value, mode: mode, client) {
                    return entry(key, value, created)
                }
            } catch  where error.zooKeeperCode == .nodeExists {
                // A bound write onto an existing znode: set it, then make sure it is ours.
                do {
                    let reply = try await client.send(.setData(path: path, data: value, version: -1))
                    guard case .stat(let stat) = reply.response else { continue }
                    if ZooKeeperPaths.owner(stat.ephemeralOwner) == owner { return entry(key, value, stat) }
                    if let replaced = try await replace(path, key: key, value: value, mode: mode, stat: stat, client) {
                        return replaced
                    }
                } catch  where error.zooKeeperCode == .noNode {
                    continue
                } catch {
                    throw failure(error, operation, key: key)
                }
            } catch {
                throw translated(error, operation, key: key)
            }
        }
        throw make(.serverError, "\(operation): the znode kept changing under concurrent writers", key: key)
    }

    /// Replaces the znode at `path` (as of `stat`) with one of `mode`, atomically; `nil` if it changed
    /// meanwhile (try again).
    private func replace(
        _ path: String, key: Key, value: [UInt8], mode: CreateMode, stat: Stat, _ client: ZooKeeperClient
    ) async throws(CoordinationError) -> Entry? {
        if stat.numChildren > 0, mode.isEphemeral {
            throw make(.invalidArgument, "a key with keys below it cannot be bound to a session", key: key)
        }
        do throws(CoordinationError) {
            let reply = try await client.send(
                .multi([
                    .delete(path: path, version: stat.version),
                    .create(path: path, data: value, acl: nodeACL, mode: mode),
                ]))
            guard case .multi(let results) = reply.response else { return nil }
            if case .created(_, let created) = results.last { return entry(key, value, created) }
            if results.contains(.error(.notEmpty)) {
                throw make(.invalidArgument, "a key with keys below it cannot be bound to a session", key: key)
            }
            return nil
        } catch {
            throw translated(error, "put", key: key)
        }
    }

    /// Creates `path` and every missing parent (parent-only znodes: persistent, null data) in one
    /// pipelined round trip and returns the new znode's Stat; `nil` if `path` appeared meanwhile.
    func createWithParents(
        _ path: String, key: Key?, value: [UInt8]?, mode: CreateMode, _ client: ZooKeeperClient
    ) async throws(CoordinationError) -> Stat? {
        let parents = paths.ancestors(of: path).map {
            ZooKeeperRequest.create(path: $0, data: nil, acl: nodeACL, mode: .persistent)
        }
        let results = await client.sendAll(parents + [.create(path: path, data: value, acl: nodeACL, mode: mode)])
        for result in results.dropLast() {
            if case .failure(let error) = result, error.zooKeeperCode != .nodeExists {
                throw translated(error, "create parents", key: key)
            }
        }
        switch results.last! {
        case .success(let reply):
            guard case .created(_, let stat) = reply.response else { return nil }
            return stat
        case .failure(let error) where error.zooKeeperCode == .nodeExists:
            return nil
        case .failure(let error):
            throw translated(error, "create", key: key)
        }
    }

    /// Errors whose meaning a caller should read as the core's, with the key named.
    func translated(_ error: CoordinationError, _ operation: String, key: Key?) -> CoordinationError {
        if error.zooKeeperCode == .noChildrenForEphemerals {
            return make(
                .invalidArgument, "\(operation): a key bound to a session (ephemeral znode) cannot have keys below it",
                key: key)
        }
        return failure(error, operation, key: key)
    }

    public func delete(_ key: Key) async throws(CoordinationError) {
        let path = try paths.path(key)
        let client = try await primary()
        do {
            _ = try await client.send(.delete(path: path, version: -1))
        } catch  where error.zooKeeperCode == .noNode {
            return
        } catch  where error.zooKeeperCode == .notEmpty {
            // Keys remain below: the znode stays as a parent only.
            do {
                _ = try await client.send(.setData(path: path, data: nil, version: -1))
            } catch  where error.zooKeeperCode == .noNode {
                return
            } catch {
                throw failure(error, "delete", key: key)
            }
        } catch {
            throw failure(error, "delete", key: key)
        }
    }

    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] {
        _ = try paths.path(prefix)
        let client = try await primary()
        return try await subtree(prefix, client).entries.sorted { $0.key < $1.key }
    }

    /// Every key strictly below `prefix`, read level by level (two pipelined round trips a level),
    /// and the zxid of the last reply.
    func subtree(_ prefix: Key, _ client: ZooKeeperClient) async throws(CoordinationError) -> (
        entries: [Entry], zxid: Int64, paths: [String]
    ) {
        var level = [try paths.path(prefix)]
        var entries: [Entry] = []
        var all: [String] = []
        var zxid: Int64 = 0
        while !level.isEmpty {
            var children: [String] = []
            for (parent, result) in zip(
                level, await client.sendAll(level.map { .getChildren2(path: $0, watch: false) }))
            {
                switch result {
                case .success(let reply):
                    zxid = max(zxid, reply.zxid)
                    guard case .children(let names, _) = reply.response else { continue }
                    children += names.map { parent + "/" + $0 }
                case .failure(let error) where error.zooKeeperCode == .noNode:
                    zxid = max(zxid, error.zooKeeperZxid ?? 0)
                case .failure(let error):
                    throw failure(error, "list", key: prefix)
                }
            }
            var next: [String] = []
            for (path, result) in zip(children, await client.sendAll(children.map { .getData(path: $0, watch: false) }))
            {
                switch result {
                case .success(let reply):
                    zxid = max(zxid, reply.zxid)
                    guard case .data(let data, let stat) = reply.response, let key = paths.key(path) else { continue }
                    all.append(path)
                    if let data { entries.append(entry(key, data, stat)) }
                    if stat.numChildren > 0 { next.append(path) }
                case .failure(let error) where error.zooKeeperCode == .noNode:
                    continue
                case .failure(let error):
                    throw failure(error, "list", key: prefix)
                }
            }
            level = next
        }
        return (entries, zxid, all)
    }

    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        _ = try paths.path(prefix)
        let client = try await primary()
        for _ in 0..<8 {
            let found = try await subtree(prefix, client).paths
            // Deepest first, one pipelined round trip; then the prefix itself.
            let doomed = found.sorted { $0.count > $1.count } + [try paths.path(prefix)]
            var retry = false
            for result in await client.sendAll(doomed.map { .delete(path: $0, version: -1) }) {
                switch result {
                case .success: continue
                case .failure(let error) where error.zooKeeperCode == .noNode: continue
                case .failure(let error) where error.zooKeeperCode == .notEmpty: retry = true
                case .failure(let error): throw failure(error, "deleteTree", key: prefix)
                }
            }
            if !retry { return }
        }
        throw make(.serverError, "deleteTree: keys kept appearing below the prefix", key: prefix)
    }

    public func atomicPut(_ key: Key, _ value: [UInt8], condition: PutCondition, options: PutOptions)
        async throws(CoordinationError) -> Entry
    {
        try validate(value: value, for: key)
        let client: ZooKeeperClient
        if let session = options.session {
            client = try self.client(for: session)
        } else {
            client = try await primary()
        }
        let owner = options.session?.id
        let mode: CreateMode = owner == nil ? .persistent : .ephemeral
        let path = try paths.path(key)
        switch condition {
        case .absent:
            for _ in 0..<8 {
                do {
                    let reply = try await client.send(.create(path: path, data: value, acl: nodeACL, mode: mode))
                    guard case .created(_, let stat) = reply.response else { break }
                    return entry(key, value, stat)
                } catch  where error.zooKeeperCode == .noNode {
                    if let created = try await createWithParents(path, key: key, value: value, mode: mode, client) {
                        return entry(key, value, created)
                    }
                } catch  where error.zooKeeperCode == .nodeExists {
                    // A parent-only znode is no key: the key is absent and may be created on it.
                    guard let current = try await read(path, key: key, client) else { continue }
                    if current.data != nil {
                        throw make(.keyExists, "atomicPut: '\(key)' exists", key: key)
                    }
                    if let written = try await swap(
                        path, key: key, value: value, owner: owner, stat: current.stat, client)
                    {
                        return written
                    }
                } catch {
                    throw translated(error, "atomicPut", key: key)
                }
            }
            throw make(.serverError, "atomicPut: the znode kept changing under concurrent writers", key: key)
        case .revision(let revision):
            guard let current = try await read(path, key: key, client), current.data != nil else {
                throw make(.keyNotFound, "atomicPut: '\(key)' does not exist", key: key)
            }
            guard UInt64(current.stat.mzxid) == revision.value else {
                throw make(
                    .revisionMismatch, "atomicPut: '\(key)' is at revision \(current.stat.mzxid), not \(revision)",
                    key: key)
            }
            if let written = try await swap(path, key: key, value: value, owner: owner, stat: current.stat, client) {
                return written
            }
            throw make(.revisionMismatch, "atomicPut: '\(key)' changed since revision \(revision)", key: key)
        }
    }

    /// Writes `value` if the znode is still at `stat.version`, as a znode of the right owner; `nil`
    /// if it changed meanwhile.
    private func swap(
        _ path: String, key: Key, value: [UInt8], owner: SessionID?, stat: Stat, _ client: ZooKeeperClient
    ) async throws(CoordinationError) -> Entry? {
        do {
            if ZooKeeperPaths.owner(stat.ephemeralOwner) == owner {
                let reply = try await client.send(.setData(path: path, data: value, version: stat.version))
                guard case .stat(let written) = reply.response else { return nil }
                return entry(key, value, written)
            }
            return try await replace(
                path, key: key, value: value, mode: owner == nil ? .persistent : .ephemeral, stat: stat, client)
        } catch  where error.zooKeeperCode == .badVersion || error.zooKeeperCode == .noNode {
            return nil
        } catch {
            throw translated(error, "atomicPut", key: key)
        }
    }

    /// The znode's data (nil: a parent only) and stat, or `nil` if there is none.
    func read(_ path: String, key: Key?, _ client: ZooKeeperClient, operation: String = "read")
        async throws(CoordinationError) -> (data: [UInt8]?, stat: Stat)?
    {
        do {
            let reply = try await client.send(.getData(path: path, watch: false))
            guard case .data(let data, let stat) = reply.response else { return nil }
            return (data, stat)
        } catch  where error.zooKeeperCode == .noNode {
            return nil
        } catch {
            throw failure(error, operation, key: key)
        }
    }

    /// The names of the znode's children, or `nil` if there is no such znode.
    func children(_ path: String, key: Key?, _ client: ZooKeeperClient, operation: String)
        async throws(CoordinationError) -> [String]?
    {
        do {
            let reply = try await client.send(.getChildren2(path: path, watch: false))
            guard case .children(let names, _) = reply.response else { return nil }
            return names
        } catch  where error.zooKeeperCode == .noNode {
            return nil
        } catch {
            throw failure(error, operation, key: key)
        }
    }

    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        let path = try paths.path(key)
        let client = try await primary()
        // A contender of ours: its version is known from its creation (unique name, never reused).
        let known = state.withLock { $0.ownContenders[path] }
        let version: Int32
        if let known, UInt64(known.mzxid) == revision.value {
            version = known.version
        } else {
            guard let current = try await read(path, key: key, client), current.data != nil else {
                throw make(.keyNotFound, "atomicDelete: '\(key)' does not exist", key: key)
            }
            guard UInt64(current.stat.mzxid) == revision.value else {
                throw make(
                    .revisionMismatch,
                    "atomicDelete: '\(key)' is at revision \(current.stat.mzxid), not \(revision)", key: key)
            }
            version = current.stat.version
        }
        do {
            _ = try await client.send(.delete(path: path, version: version))
            _ = state.withLock { $0.ownContenders.removeValue(forKey: path) }
        } catch  where error.zooKeeperCode == .noNode {
            _ = state.withLock { $0.ownContenders.removeValue(forKey: path) }
            throw make(.keyNotFound, "atomicDelete: '\(key)' does not exist", key: key)
        } catch  where error.zooKeeperCode == .badVersion {
            throw make(.revisionMismatch, "atomicDelete: '\(key)' changed since revision \(revision)", key: key)
        } catch  where error.zooKeeperCode == .notEmpty {
            do {
                _ = try await client.send(.setData(path: path, data: nil, version: version))
            } catch  where error.zooKeeperCode == .badVersion {
                throw make(.revisionMismatch, "atomicDelete: '\(key)' changed since revision \(revision)", key: key)
            } catch  where error.zooKeeperCode == .noNode {
                throw make(.keyNotFound, "atomicDelete: '\(key)' does not exist", key: key)
            } catch {
                throw failure(error, "atomicDelete", key: key)
            }
        } catch {
            throw failure(error, "atomicDelete", key: key)
        }
    }
}
