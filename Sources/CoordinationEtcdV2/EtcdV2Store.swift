import AsyncHTTPClient
import CoordinationCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The etcd v2 backend, over the v2 HTTP keys API (for clusters that still speak it, such as
/// etcd 3.4 started with `--enable-v2=true`; the v2 and v3 keyspaces are separate).
///
/// It keeps etcd v2's own rules, as libkv users know them: directories are not keys and hold no
/// value (a put on one fails with `isADirectory`), a put below `a/b` makes `a/b` a directory (and
/// fails with `notADirectory` if `a/b` holds a value), `watchTree` needs a directory, and
/// ``PutOptions/isDirectory`` creates an empty one. TTLs are whole seconds.
///
/// v2 has no leases: a session is a TTL'd directory record plus the session's keys, each with the
/// same TTL, refreshed by the store. Conditional writes use `prevExist` / `prevIndex`; watches are
/// `wait=true` long polls; contenders are in-order keys (POST) ordered by `createdIndex`.
public final class EtcdV2Store: KeyValueStore, SessionBackend {
    public struct Configuration: Sendable {
        /// The member to talk to.
        public var host: String
        public var port: Int
        /// A directory under which this store keeps everything (empty: none).
        public var namespace: String
        /// The deadline of every request other than a watch's long poll.
        public var requestTimeout: Duration
        /// How long one watch long poll waits for an event before it is sent again from the same
        /// index (etcd v2 has no server-side wait limit, so this deadline is the wait).
        public var watchPollTimeout: Duration
        /// How long a watch keeps trying to reach etcd before it fails with `connectionFailed`.
        public var watchReconnectLimit: Duration
        /// The largest value accepted (etcd's request limit is 1.5 MiB; the value may grow by a
        /// third when it is stored base64-encoded).
        public var maxValueSize: Int
        public var logger: Logger

        public init(
            host: String,
            port: Int = 2379,
            namespace: String = "",
            requestTimeout: Duration = .seconds(5),
            watchPollTimeout: Duration = .seconds(30),
            watchReconnectLimit: Duration = .seconds(10),
            maxValueSize: Int = 1024 * 1024,
            logger: Logger = Logger(label: "swift-coordination.etcdv2")
        ) {
            self.host = host
            self.port = port
            self.namespace = namespace
            self.requestTimeout = requestTimeout
            self.watchPollTimeout = watchPollTimeout
            self.watchReconnectLimit = watchReconnectLimit
            self.maxValueSize = maxValueSize
            self.logger = logger
        }
    }

    public let storeDescription: StoreDescription
    public let limits: StoreLimits
    /// No values on inner nodes (v2 directories hold none); delete events tell `expire` apart;
    /// a session can be revoked by any client through its record.
    public let capabilities: StoreCapabilities = [.distinguishesExpiry, .revokeForeignSession]

    let configuration: Configuration
    let keySpace: V2KeySpace
    let errors: V2ErrorMapper
    let connection: V2Connection
    let runner = V2TaskRunner()
    private let http: HTTPClient
    let sessions: V2SessionKeeper
    private let watches = Mutex<[UInt64: (continuation: WatchStream.Continuation, stop: WakeSignal)]>([:])
    private let nextWatchID = Atomic<UInt64>(0)
    /// Set once close() starts (it runs once); `closed` once calls are refused.
    private let closing = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)
    private let stopped = WakeSignal()

    public init(configuration: Configuration) throws(CoordinationError) {
        let endpoint = "\(configuration.host):\(configuration.port)"
        self.configuration = configuration
        self.storeDescription = StoreDescription(backend: "etcdv2", endpoint: endpoint)
        self.limits = StoreLimits(
            maxValueSize: configuration.maxValueSize,
            minimumSessionTTL: .seconds(1),
            maximumSessionTTL: .seconds(Int64(Int32.max))
        )
        self.errors = V2ErrorMapper(endpoint: endpoint)
        guard !configuration.host.isEmpty, configuration.host.allSatisfy({ !$0.isWhitespace && $0 != "/" }),
            (1...65535).contains(configuration.port)
        else {
            throw errors.make(.invalidConnectionString, "etcd v2 needs a host and a port between 1 and 65535")
        }
        if !configuration.namespace.isEmpty, (try? Key(configuration.namespace)) == nil {
            throw errors.make(.invalidConnectionString, "the namespace must be a valid key path")
        }
        var httpConfiguration = HTTPClient.Configuration()
        // Every watch holds a connection for its long poll, so allow many (HTTP/1.1, one request
        // per connection at a time).
        httpConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        httpConfiguration.timeout = .init(connect: .milliseconds(Self.milliseconds(configuration.requestTimeout)))
        httpConfiguration.redirectConfiguration = .disallow
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        self.keySpace = V2KeySpace(namespace: configuration.namespace)
        self.connection = V2Connection(
            http: http, baseURL: "http://\(host):\(configuration.port)", errors: errors,
            maxResponseSize: 64 * 1024 * 1024)
        self.sessions = V2SessionKeeper(connection: connection, keySpace: keySpace, logger: configuration.logger)
    }

    deinit {
        // The HTTP client must be shut down; close() does it, this covers a store never closed.
        // Without blocking: a deinit can run on a thread of Swift's small cooperative pool, and a
        // blocking shutdown there can starve the very work it waits for.
        if !closing.load(ordering: .acquiring) { _ = http.shutdown() }
    }

    /// Adds the `etcdv2://host:port[/namespace][?timeout=5s]` scheme to `registry`.
    public static func register(in registry: inout StoreRegistry) {
        registry.register(scheme: "etcdv2") { (connection, configuration) throws(CoordinationError) in
            guard connection.endpoints.count == 1, let endpoint = connection.endpoints.first else {
                throw CoordinationError(
                    .invalidConnectionString, "etcdv2:// takes exactly one host:port", backend: "etcdv2")
            }
            if connection.user != nil {
                throw CoordinationError(
                    .invalidConnectionString, "etcdv2:// does not support credentials", backend: "etcdv2")
            }
            var options = Configuration(
                host: endpoint.host, port: endpoint.port ?? 2379, namespace: connection.path,
                logger: configuration.logger)
            if let timeout = try connection.positiveDuration("timeout") { options.requestTimeout = timeout }
            return try EtcdV2Store(configuration: options)
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        max(1, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Service

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runner.run() }
            group.addTask { await self.sessions.run() }
            await stopped.wait()
            group.cancelAll()
        }
    }

    public func close() async {
        guard !closing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let open = watches.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
        for watch in open {
            watch.continuation.fail(errors.make(.storeClosed, "the store was closed"))
            watch.stop.signal()
        }
        // End our sessions now rather than a TTL later, as etcd v3 revokes leases.
        await withDiscardingTaskGroup { group in
            for tracked in sessions.allSessions() where !tracked.abandoned {
                group.addTask {
                    _ = self.sessions.remove(tracked.session.id)
                    try? await self.endSession(tracked.session.id, alsoKnown: Array(tracked.keys.keys))
                    tracked.session.transition(to: .closed)
                }
            }
        }
        closed.store(true, ordering: .releasing)
        runner.finish()
        stopped.signal()
        try? await http.shutdown()
    }

    // MARK: - Calls

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
    private func makeDirectory(_ key: Key, session: Session?) async throws(CoordinationError) {
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

    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(key, recursive: false)
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(prefix, recursive: true)
    }

    private func startWatch(_ key: Key, recursive: Bool) async throws(CoordinationError) -> WatchStream {
        try checkOpen(key)
        let watch = V2Watch(
            connection: connection, keySpace: keySpace, errors: errors, key: key, recursive: recursive,
            requestTimeout: configuration.requestTimeout, pollTimeout: configuration.watchPollTimeout,
            reconnectLimit: configuration.watchReconnectLimit)
        let start = try await watch.snapshot()
        let (stream, continuation) = WatchStream.makeStream()
        let id = nextWatchID.wrappingAdd(1, ordering: .relaxed).newValue
        let stop = WakeSignal()
        watches.withLock { $0[id] = (continuation, stop) }
        continuation.onTermination { [weak self] in
            stop.signal()
            self?.watches.withLock { _ = $0.removeValue(forKey: id) }
        }
        continuation.yield(.snapshot(WatchSnapshot(entries: start.entries, revision: Revision(start.index))))
        let submitted = runner.submit(until: stop) {
            await watch.follow(from: start.index, known: start.entries, into: continuation)
        }
        if !submitted || closed.load(ordering: .acquiring) {
            continuation.fail(errors.make(.storeClosed, "the store was closed", key: key))
        }
        return stream
    }

    // MARK: - Sessions

    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try validate(ttl: ttl)
        try checkOpen(nil)
        // v2 TTLs are whole seconds: round up.
        let seconds = max(1, (Self.milliseconds(ttl) + 999) / 1000)
        let id = SessionID(UUID().uuidString.lowercased())
        let sentAt = ContinuousClock.now
        let reply = try await send(
            .put, keySpace.sessionPath(id), query: [("dir", "true"), ("ttl", String(seconds)), ("prevExist", "false")],
            operation: "makeSession")
        _ = try success(reply, "makeSession", key: nil)
        let session = Session(
            id: id, ttl: .seconds(seconds), backend: self, guaranteedUntil: sentAt + .seconds(seconds))
        sessions.add(session, ttlSeconds: seconds, sentAt: sentAt)
        return session
    }

    /// Ends a session from any client: removes every key its record lists that is still bound to
    /// it, then the record. Its owner sees `expired` on its next refresh.
    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        guard (try? Key(id.rawValue))?.segments.count == 1 else {
            throw errors.make(.invalidArgument, "'\(id)' is not an etcd v2 session id")
        }
        let tracked = sessions.remove(id)
        try await endSession(id, alsoKnown: tracked.map { Array($0.keys.keys) } ?? [])
        tracked?.session.transition(to: .expired)
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        guard let tracked = sessions.remove(id) else { return }
        try await endSession(id, alsoKnown: Array(tracked.keys.keys))
    }

    public func abandonSession(_ id: SessionID) {
        sessions.abandon(id)
    }

    /// Deletes the keys a session's record lists, and those this store knows it bound (each only
    /// while still bound to the session), then the record.
    private func endSession(_ id: SessionID, alsoKnown: [Key] = []) async throws(CoordinationError) {
        let reply = try await send(
            .get, keySpace.sessionPath(id), query: [("recursive", "true")], operation: "revokeSession")
        var bound = Set(alsoKnown)
        switch reply {
        case .success(let response, _):
            for leaf in response.node.leaves where !leaf.isDirectory {
                if let key = try? Key(leaf.value ?? "") { bound.insert(key) }
            }
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            if bound.isEmpty { return }  // already gone
        case .failure(let body):
            throw errors.etcd(body, "revokeSession")
        }
        let failure = await withTaskGroup(of: CoordinationError?.self, returning: CoordinationError?.self) { group in
            for key in bound {
                group.addTask {
                    do throws(CoordinationError) {
                        guard let entry = try await self.get(key), entry.session == id else { return nil }
                        _ = try await self.send(
                            .delete, self.keySpace.path(key),
                            query: [("prevIndex", String(entry.modifyRevision.value))],
                            operation: "revokeSession", key: key)
                        self.sessions.unbind(key)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            for await result in group { if let result { return result } }
            return nil
        }
        if let failure { throw failure }
        _ = try await send(
            .delete, keySpace.sessionPath(id), query: [("recursive", "true")], operation: "revokeSession")
    }

    // MARK: - Plumbing

    /// etcd v2 hides every node whose name starts with `_` from listings and recursive watches,
    /// so such a key could be written but never listed or watched: refuse it before any I/O.
    static func checkVisible(_ key: Key) throws(CoordinationError) {
        if key.segments.contains(where: { $0.hasPrefix("_") }) {
            throw CoordinationError(
                .invalidKey,
                "invalid key for etcd v2: a segment starting with '_' is a hidden node, left out of listings and watches",
                key: key.path, backend: "etcdv2")
        }
    }

    private func checkOpen(_ key: Key?) throws(CoordinationError) {
        if closed.load(ordering: .acquiring) {
            throw errors.make(.storeClosed, "the store was closed", key: key)
        }
    }

    func send(
        _ method: V2Connection.Method,
        _ path: String,
        query: [(String, String)] = [],
        value: String? = nil,
        timeout: Duration? = nil,
        operation: String,
        key: Key? = nil
    ) async throws(CoordinationError) -> V2Reply {
        try checkOpen(key)
        if let key { try Self.checkVisible(key) }
        return try await connection.send(
            method, path, query: query, value: value, timeout: timeout ?? configuration.requestTimeout,
            operation: operation, key: key)
    }

    func success(_ reply: V2Reply, _ operation: String, key: Key?) throws(CoordinationError) -> V2Response {
        switch reply {
        case .success(let response, _): return response
        case .failure(let body): throw errors.etcd(body, operation, key: key)
        }
    }

    /// The TTL in seconds for a key bound to `session`, or `nil` when unbound.
    func sessionTTL(_ session: Session?, key: Key) throws(CoordinationError) -> Int64? {
        guard let session else { return nil }
        guard session.isActive, let ttl = sessions.ttlSeconds(session.id) else {
            throw errors.make(.sessionExpired, "session \(session.id) has ended; cannot bind a key to it", key: key)
        }
        return ttl
    }

    /// After a write: a bound key joins its session's refreshes and record; an unbound write ends
    /// any binding the key had.
    func track(_ key: Key, node: V2Node, session: Session?) async throws(CoordinationError) {
        guard let session else {
            if let previous = sessions.unbind(key) { await dropRecord(previous, key) }
            return
        }
        sessions.bind(key, to: session.id, index: node.modifiedIndex)
    }

    /// Lists `key` in the session's record, so that any client can find and revoke it. Written
    /// before the key itself where the name is known, so a cancelled write never leaves a bound
    /// key that the record does not list; an entry for a key that was not written is harmless
    /// (revocation checks the key's own session first).
    func recordBinding(_ id: SessionID, _ key: Key) async throws(CoordinationError) {
        let reply = try await send(
            .put, keySpace.boundKeyRecordPath(id, key), value: key.path, operation: "bind", key: key)
        if case .failure(let body) = reply {
            configuration.logger.info(
                "could not record a bound key in its session", metadata: ["key": "\(key)", "error": "\(body.message)"])
        }
    }

    func untrack(_ key: Key) async {
        if let previous = sessions.unbind(key) { await dropRecord(previous, key) }
    }

    private func dropRecord(_ id: SessionID, _ key: Key) async {
        _ = try? await send(.delete, keySpace.boundKeyRecordPath(id, key), operation: "unbind", key: key)
    }
}
