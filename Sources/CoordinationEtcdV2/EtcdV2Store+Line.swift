@_spi(Backend) import CoordinationCore

extension EtcdV2Store {
    /// The line on etcd v2: contenders are in-order keys (`POST`) under the prefix, `prefix/<index>`,
    /// with the session's TTL and refreshed with it, first in line by createdIndex.
    public struct Line: ContenderLine {
        public let store: EtcdV2Store

        /// Creates the contender, then reads the line (the v2 API has no transaction to do both).
        /// Both steps run to completion (each has its deadline) even if the caller is cancelled
        /// meanwhile, so a contender that was created is always handed back for the caller to
        /// remove, never left in line behind its back; if the read fails, the contender is removed
        /// before the error is thrown.
        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            try await runToCompletion(on: nil) { () throws(CoordinationError) in
                let contender = try await store.postContender(under: prefix, value: value, session: session)
                do throws(CoordinationError) {
                    return try await placing(contender, in: prefix)
                } catch {
                    await store.removeUnplaced(contender)
                    throw error
                }
            }
        }

        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            contenders(in: prefix, from: try await store.children(of: prefix))
        }
    }

    public var line: Line { Line(store: self) }
}

extension EtcdV2Store {
    /// An in-order key (POST) under `prefix`, bound to the session: `prefix/<20-digit index>`.
    func postContender(under prefix: Key, value: [UInt8], session: Session) async throws(CoordinationError)
        -> Contender
    {
        try validate(value: value, for: prefix)
        guard let ttl = try sessionTTL(session, key: prefix) else {
            throw errors.make(.sessionExpired, "session \(session.id) is not open in this store", key: prefix)
        }
        let reply = try await send(
            .post, keySpace.path(prefix), query: [("ttl", String(ttl))],
            value: V2ValueCodec.encode(value, session: session.id.rawValue), operation: "createContender", key: prefix)
        let node = try success(reply, "createContender", key: prefix).node
        guard let key = keySpace.key(node.key) else {
            throw errors.make(.protocolError, "etcd named the in-order key '\(node.key)'", key: prefix)
        }
        try await track(key, node: node, session: session)
        try await recordBinding(session.id, key)
        return Contender(entry: EtcdV2Entries.entry(node, key: key))
    }

    /// Removes a contender whose join could not read the line (best effort: if this fails too,
    /// the session's TTL removes it).
    func removeUnplaced(_ contender: Contender) async {
        _ = try? await send(
            .delete, keySpace.path(contender.key),
            query: [("prevIndex", String(sessions.resolve(contender.key, revision: contender.modifyRevision.value)))],
            operation: "joinLine", key: contender.key)
        await untrack(contender.key)
    }

    /// The keys directly under `prefix` (not directories): the entries the line is read from.
    func children(of prefix: Key) async throws(CoordinationError) -> [Entry] {
        let reply = try await send(
            .get, keySpace.path(prefix), query: [("sorted", "true")], operation: "contenders", key: prefix)
        switch reply {
        case .success(let response, _):
            guard response.node.isDirectory else { return [] }
            return (response.node.nodes ?? []).compactMap { node -> Entry? in
                guard !node.isDirectory, let key = keySpace.key(node.key), key.isChild(of: prefix) else { return nil }
                return EtcdV2Entries.entry(node, key: key)
            }
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            return []
        case .failure(let body):
            throw errors.etcd(body, "contenders", key: prefix)
        }
    }
}
