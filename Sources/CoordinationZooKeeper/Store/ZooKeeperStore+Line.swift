@_spi(Backend) import CoordinationCore
import Synchronization

/// The ordering primitive on ZooKeeper: Curator's protected ephemeral-sequential znodes.
///
/// A contender is `<prefix>/_c_<uuid>-<role>-<sequence>` (Curator's `InterProcessMutex` and
/// `LeaderLatch` names), created on its session's own connection. The line is every child of the
/// prefix that ends in a sequence number — kazoo's `<uuid>__lock__<sequence>` too — ordered by that
/// number. If the connection breaks before the create's reply, the contender is found again after
/// the session resumes by its uuid (Curator's protected-name recovery), so no orphan stays in line.
extension ZooKeeperStore {
    public struct Line: ContenderLine {
        public let store: ZooKeeperStore

        /// Creates the contender and reads the line in one round trip (create, then getChildren,
        /// pipelined). When the new contender is first, that is all: an uncontended lock costs
        /// these two requests and one delete.
        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            try await runToCompletion(on: store.executor) { () async throws(CoordinationError) in
                try await store.create(prefix, role: role, value: value, session: session)
            }
        }

        public func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace? {
            try await store.place(of: contender, under: prefix)
        }

        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            try await store.contenders(under: prefix)
        }

        /// The children whose names end in a sequence number, by that number (see
        /// ``contenders(in:)``).
        public func contenders(in prefix: Key, from entries: [Entry]) -> [Contender] {
            entries
                .filter { $0.key.isChild(of: prefix) && ZooKeeperPaths.sequence(of: $0.key.name[...]) != nil }
                .sorted {
                    $0.createRevision != $1.createRevision ? $0.createRevision < $1.createRevision : $0.key < $1.key
                }
                .map(Contender.init(entry:))
        }
    }

    public var line: Line { Line(store: self) }
}

extension ZooKeeperStore {
    /// The children whose names end in a sequence number (Curator's and kazoo's contender names),
    /// in line order. Any other child (a parent znode of a key written below the name, a key put
    /// there by other means) is no contender, as in Curator's `LockInternals`: it neither blocks
    /// nor shortens the line.
    func contenders(under prefix: Key) async throws(CoordinationError) -> [Contender] {
        let path = try paths.path(prefix)
        let client = try await primary()
        guard let names = try await children(path, key: prefix, client, operation: "contenders") else { return [] }
        return try await details(Self.ordered(names).map(\.name), under: prefix, client)
    }

    /// The contender names among `names` in line order: by sequence number (which grows with the
    /// creation zxid under one parent), then by name. Names without a sequence number are left out.
    static func ordered(_ names: [String]) -> [(name: String, sequence: Int64)] {
        var line: [(name: String, sequence: Int64)] = []
        line.reserveCapacity(names.count)
        for name in names {
            guard let sequence = ZooKeeperPaths.sequence(of: name[...]) else { continue }
            line.append((name, sequence))
        }
        return line.sorted { $0.sequence != $1.sequence ? $0.sequence < $1.sequence : $0.name < $1.name }
    }

    /// Reads the given children (pipelined) and returns the keys among them in line order (creation
    /// zxid); those gone meanwhile and parent-only znodes are left out.
    private func details(_ names: [String], under prefix: Key, _ client: ZooKeeperClient)
        async throws(CoordinationError) -> [Contender]
    {
        let base = try paths.path(prefix)
        let results = await client.sendAll(names.map { .getData(path: base + "/" + $0, watch: false) })
        var contenders: [Contender] = []
        for (name, result) in zip(names, results) {
            switch result {
            case .success(let reply):
                guard case .data(let data?, let stat) = reply.response, let key = try? prefix.appending(name)
                else { continue }
                contenders.append(contender(key, value: data, stat: stat))
            case .failure(let error) where error.zooKeeperCode == .noNode:
                continue
            case .failure(let error):
                throw failure(error, "contenders", key: prefix)
            }
        }
        return contenders.sorted {
            $0.createRevision != $1.createRevision ? $0.createRevision < $1.createRevision : $0.key < $1.key
        }
    }

    /// The ordering number (and fencing token) is the creation zxid: it orders sequential names
    /// exactly as their sequence numbers do, and also orders keys put under the prefix otherwise.
    private func contender(_ key: Key, value: [UInt8], stat: Stat) -> Contender {
        Contender(
            key: key, order: Revision(UInt64(stat.czxid)), createRevision: Revision(UInt64(stat.czxid)),
            modifyRevision: Revision(UInt64(stat.mzxid)), session: ZooKeeperPaths.owner(stat.ephemeralOwner),
            value: value)
    }

    func create(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
        async throws(CoordinationError) -> LineJoin
    {
        try validate(value: value, for: prefix)
        try session.checkActive()
        let client = try client(for: session)
        let base = try paths.path(prefix)
        let namePrefix = ZooKeeperPaths.contenderPrefix(uuid: Self.uuid(), role: role)
        let create = ZooKeeperRequest.create(
            path: base + "/" + namePrefix, data: value, acl: nodeACL, mode: .ephemeralSequential)
        for _ in 0..<8 {
            let results = await client.sendAll([create, .getChildren2(path: base, watch: false)])
            switch results[0] {
            case .success(let reply):
                guard case .created(let path, let stat) = reply.response else { continue }
                let me = try created(path, stat: stat, value: value, under: prefix)
                guard case .success(let listing) = results[1], case .children(let names, _) = listing.response else {
                    // The listing failed after the create: read the place on its own.
                    return LineJoin(contender: me, place: try await place(of: me, under: prefix))
                }
                return LineJoin(contender: me, place: try await place(of: me, names: names, under: prefix, client))
            case .failure(let error) where error.zooKeeperCode == .noNode:
                // The prefix does not exist yet: create it (and its parents) as parents only.
                _ = try await createWithParents(base, key: prefix, value: nil, mode: .persistent, client)
            case .failure(let error) where error.code == .connectionFailed:
                // The reply was lost with the connection: the contender may exist. Find it by its
                // uuid once the session is back (the listing waits for that), or create it again.
                if let me = try await recover(namePrefix, under: prefix, client) {
                    return LineJoin(contender: me, place: try await place(of: me, under: prefix))
                }
            case .failure(let error):
                throw translated(error, "joinLine", key: prefix)
            }
        }
        throw make(.serverError, "joinLine: could not create a contender", key: prefix)
    }

    private func created(_ path: String, stat: Stat, value: [UInt8], under prefix: Key) throws(CoordinationError)
        -> Contender
    {
        let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
        guard ZooKeeperPaths.sequence(of: name[...]) != nil else {
            throw make(.protocolError, "the server named a sequential znode '\(name)' without a sequence", key: prefix)
        }
        let key = try prefix.appending(name)
        state.withLock { state in
            // Contenders that left with their session are never deleted through this store: keep the
            // table small by forgetting everything now and then (a miss costs one read).
            if state.ownContenders.count >= 4096 { state.ownContenders.removeAll() }
            state.ownContenders[path] = (stat.mzxid, stat.version)
        }
        return contender(key, value: value, stat: stat)
    }

    /// Lists the prefix's children (one request); the names alone tell the place, since sequential
    /// names are never reused: a waiter that wakes up costs one request, and its wait one more.
    ///
    /// The listing is read on the contender's own session when this store holds it: ZooKeeper
    /// gives read-your-writes only within a session, and the member that session is connected to
    /// has applied at least the contender's own creation, so every contender created before it is
    /// in the listing. A line read on another session (connected to a member that is behind) could
    /// miss the one just ahead. For a contender of a session this store does not hold, the store's
    /// own session `sync`s first.
    func place(of contender: Contender, under prefix: Key) async throws(CoordinationError) -> LinePlace? {
        let path = try paths.path(prefix)
        let client = try await lineReader(for: contender.session, path: path, key: prefix)
        guard let names = try await children(path, key: prefix, client, operation: "place") else { return nil }
        return try await place(of: contender, names: names, under: prefix, client)
    }

    /// The client to read a contender's line with: its own session's, or the store's own session
    /// after a `sync` of `path` (so that it has caught up with the leader).
    private func lineReader(for session: SessionID?, path: String, key: Key) async throws(CoordinationError)
        -> ZooKeeperClient
    {
        if let session, let own = state.withLock({ $0.sessions[session]?.client }) { return own }
        let client = try await primary()
        do {
            _ = try await client.send(.sync(path: path))
        } catch  where error.zooKeeperCode == .noNode {
            // Nothing to catch up on below a prefix that does not exist.
        } catch {
            throw failure(error, "place", key: key)
        }
        return client
    }

    /// `contender`'s place among `names`, or `nil` if it is not among them.
    private func place(of contender: Contender, names: [String], under prefix: Key, _ client: ZooKeeperClient)
        async throws(CoordinationError) -> LinePlace?
    {
        let myName = String(contender.key.name)
        let line = Self.ordered(names)
        guard let index = line.firstIndex(where: { $0.name == myName }) else { return nil }
        if index == 0 { return .first }
        let ahead = try prefix.appending(line[index - 1].name)
        return .behind(.init(key: ahead, createRevision: nil, session: nil))
    }

    private func recover(_ namePrefix: String, under prefix: Key, _ client: ZooKeeperClient)
        async throws(CoordinationError) -> Contender?
    {
        let base = try paths.path(prefix)
        guard let names = try await children(base, key: prefix, client, operation: "joinLine"),
            let name = names.first(where: { $0.hasPrefix(namePrefix) }),
            let current = try await read(base + "/" + name, key: prefix, client, operation: "joinLine")
        else { return nil }
        return try created(base + "/" + name, stat: current.stat, value: current.data ?? [], under: prefix)
    }

    /// A random (version 4) UUID in its usual text form, as Curator's protected names use.
    static func uuid() -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let digits = Array("0123456789abcdef")
        let hex = bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]]) }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(
            separator: "-")
    }
}
