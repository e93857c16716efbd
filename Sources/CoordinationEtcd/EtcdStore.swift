import CoordinationCore
import CoordinationNIO
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The etcd v3 backend, over gRPC (HTTP/2).
///
/// One connection per store, multiplexed: every lease of the store is renewed on one
/// `LeaseKeepAlive` stream, every watch shares one `Watch` stream, conditional writes are single
/// `Txn`s, and every unary call has a deadline. Contenders are `prefix/<lease id in hex>` ordered by
/// create revision — the layout of etcd's own concurrency `Mutex` and `Election`, so locks and
/// elections are shared with `etcdctl lock` / `etcdctl elect` and Go services.
///
/// ```swift
/// let store = try EtcdStore(configuration: .init(endpoints: [("127.0.0.1", 2379)]))
/// try await store.withRunning { store in … }
/// ```
public final class EtcdStore: KeyValueStore, SessionBackend {
    public struct Configuration: Sendable {
        /// The members to talk to (host, port). Several give failover: a call goes to a member that answers.
        public var endpoints: [(host: String, port: Int)]
        /// A key prefix under which this store keeps everything (empty: none).
        public var namespace: String
        /// The deadline of every unary call.
        public var requestTimeout: Duration
        /// Username and password for etcd's authentication, if enabled.
        public var credentials: (username: String, password: String)?
        /// The largest value accepted (etcd's own request limit is 1.5 MiB by default).
        public var maxValueSize: Int
        /// TLS for the client connections (etcd's `https://` client URLs); nil: plain TCP.
        public var tls: TLS?
        public var logger: Logger

        public init(
            endpoints: [(host: String, port: Int)],
            namespace: String = "",
            requestTimeout: Duration = .seconds(5),
            credentials: (username: String, password: String)? = nil,
            maxValueSize: Int = 1024 * 1024,
            tls: TLS? = nil,
            logger: Logger = Logger(label: "swift-coordination.etcd")
        ) {
            self.endpoints = endpoints
            self.namespace = namespace
            self.requestTimeout = requestTimeout
            self.credentials = credentials
            self.maxValueSize = maxValueSize
            self.tls = tls
            self.logger = logger
        }
    }

    /// TLS settings, as etcdctl's `--cacert`, `--cert`, `--key`: PEM files read when the store is
    /// made. The server's certificate is always verified, against `serverName` or else the
    /// endpoint's host (a name, or an IP address matched against the certificate's IP entries).
    public struct TLS: Sendable {
        /// The certificate authorities to trust (PEM, one or more); nil: the system's.
        public var trustedCAFile: String?
        /// A client certificate (PEM chain) and its private key, for etcd's `--client-cert-auth`.
        public var certificateFile: String?
        public var keyFile: String?
        /// The name to verify the server's certificate against and send as SNI.
        public var serverName: String?

        public init(
            trustedCAFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil
        ) {
            self.trustedCAFile = trustedCAFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.serverName = serverName
        }
    }

    public let storeDescription: StoreDescription
    public let limits: StoreLimits
    public let capabilities: StoreCapabilities = [.valuesOnInnerNodes, .revokeForeignSession]
    /// The event loop of the store's connections (see ``KeyValueStore/taskExecutor``).
    public var taskExecutor: (any TaskExecutor)? { executor }

    private let configuration: Configuration
    private let transport: EtcdTransport
    let keySpace: EtcdKeySpace
    let errors: EtcdErrorMapper
    private let leases: LeaseKeeper
    private let watches: WatchHub
    private let followers: KeyFollowers
    private let closed = Atomic<Bool>(false)
    private let stopped = WakeSignal()
    private let authToken = Mutex<String?>(nil)
    let executor: EventLoopTaskExecutor

    public init(configuration: Configuration) throws(CoordinationError) {
        let endpointText = configuration.endpoints.map { "\($0.host):\($0.port)" }.joined(separator: ",")
        self.configuration = configuration
        self.storeDescription = StoreDescription(backend: "etcd", endpoint: endpointText)
        self.limits = StoreLimits(
            maxValueSize: configuration.maxValueSize,
            minimumSessionTTL: .seconds(1),
            maximumSessionTTL: .seconds(9_000_000_000)
        )
        self.errors = EtcdErrorMapper(endpoint: endpointText)
        guard !configuration.endpoints.isEmpty else {
            throw errors.make(.invalidConnectionString, "etcd needs at least one endpoint")
        }
        guard configuration.endpoints.allSatisfy({ !$0.host.isEmpty && (1...65_535).contains($0.port) }) else {
            throw errors.make(.invalidConnectionString, "an etcd endpoint needs a host and a port in 1...65535")
        }
        self.executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())
        var tls: EtcdTransport.TLS?
        if let settings = configuration.tls { tls = try EtcdTransport.TLS(settings, errors: errors) }
        self.transport = EtcdTransport(
            endpoints: configuration.endpoints.map { EtcdTransport.Endpoint(host: $0.host, port: $0.port) },
            tls: tls,
            eventLoop: executor.eventLoop,
            connectTimeout: min(configuration.requestTimeout, .seconds(5)),
            // A response carries at most a range of values; etcd's own default limit is 2 GiB.
            maximumMessageSize: Int(Int32.max),
            logger: configuration.logger
        )
        self.keySpace = EtcdKeySpace(namespace: configuration.namespace)
        self.leases = LeaseKeeper(logger: configuration.logger)
        self.watches = WatchHub(keySpace: keySpace, errors: errors, logger: configuration.logger)
        self.followers = KeyFollowers(executor: executor)
    }

    /// Adds the `etcd://h1:p1,h2:p2[/namespace][?timeout=5s]` scheme to `registry`; a
    /// `user:password@` part logs in with etcd's authentication. TLS: `tls=true` (the system's CAs),
    /// or `ca=`, `cert=`, `key=` (PEM files) and `servername=`, as etcdctl's flags.
    public static func register(in registry: inout StoreRegistry) {
        registry.register(scheme: "etcd") { (connection, configuration) throws(CoordinationError) in
            var options = Configuration(
                endpoints: connection.endpoints.map { (host: $0.host, port: $0.port ?? 2379) },
                namespace: connection.path,
                logger: configuration.logger
            )
            if let user = connection.user {
                options.credentials = (user, connection.password ?? "")
            }
            let tlsOptions = ["tls", "ca", "cert", "key", "servername"]
            if tlsOptions.contains(where: { connection.query[$0] != nil }) {
                if let flag = connection.query["tls"], !["true", "1", "false", "0"].contains(flag) {
                    throw CoordinationError(.invalidConnectionString, "tls must be true or false, got '\(flag)'")
                }
                if connection.query["tls"] != "false", connection.query["tls"] != "0" {
                    options.tls = TLS(
                        trustedCAFile: connection.query["ca"], certificateFile: connection.query["cert"],
                        keyFile: connection.query["key"], serverName: connection.query["servername"])
                }
            }
            if let timeout = try connection.positiveDuration("timeout") { options.requestTimeout = timeout }
            return try EtcdStore(configuration: options)
        }
    }

    // MARK: - Service

    public func run() async throws {
        let snapshotter: WatchHub.Snapshotter = { [keySpace] key, rangeEnd in
            let response: Etcdserverpb_RangeResponse = try await self.transport.unary(
                EtcdRPC.range.path,
                Etcdserverpb_RangeRequest.with {
                    $0.key = Data(key)
                    $0.rangeEnd = Data(rangeEnd)
                },
                metadata: self.metadata(),
                timeout: self.configuration.requestTimeout
            )
            let entries = response.kvs.compactMap { kv in keySpace.key(kv.key).map { EtcdEntries.entry(kv, key: $0) } }
            return (entries, response.header.revision)
        }
        // Returns when the store is closed or the task is cancelled (graceful shutdown), without
        // throwing: a ServiceGroup sees a clean stop. The keep-alive stream and the watch stream
        // are served on the store's event loop; the connection itself is made on demand.
        await onTaskExecutor { await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.leases.run(transport: self.transport, metadata: self.streamMetadata) }
            group.addTask {
                await self.watches.run(transport: self.transport, snapshot: snapshotter, metadata: self.streamMetadata)
            }
            await stopped.wait()
            group.cancelAll()
        } }
    }

    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        followers.close()
        watches.close()
        // Revoke our leases so their keys go now rather than a TTL later.
        await withDiscardingTaskGroup { group in
            for (id, session) in leases.allSessions() {
                group.addTask {
                    let _: Etcdserverpb_LeaseRevokeResponse? = try? await self.transport.unary(
                        EtcdRPC.leaseRevoke.path, Etcdserverpb_LeaseRevokeRequest.with { $0.id = id },
                        metadata: self.metadata(), timeout: self.configuration.requestTimeout)
                    self.leases.remove(id)
                    session.transition(to: .closed)
                }
            }
        }
        await transport.shutdown()
        stopped.signal()
    }

    // MARK: - Calls

    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        let response = try await call("get", key: key, .range, .with { $0.key = Data(keySpace.bytes(key)) })
        return response.kvs.first.map { EtcdEntries.entry($0, key: key) }
    }

    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        let response = try await call("exists", key: key, .range, .with {
                    $0.key = Data(keySpace.bytes(key))
                    $0.countOnly = true
                })
        return response.count > 0
    }

    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        try validate(value: value, for: key)
        let lease = try leaseID(options.session, key: key)
        _ = try await call("put", key: key, .put, .with {
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
        let response = try await call("list", key: prefix, .range, .with {
                    $0.key = Data(start)
                    $0.rangeEnd = Data(end)
                })
        return response.kvs.compactMap { kv in keySpace.key(kv.key).map { EtcdEntries.entry(kv, key: $0) } }
            .sorted { $0.key < $1.key }
    }

    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        let (start, end) = keySpace.subtree(prefix)
        // The key itself and its subtree in one transaction: one revision, all or nothing.
        _ = try await call("deleteTree", key: prefix, .txn, .with {
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
        let response = try await call("atomicPut", key: key, .txn, .with {
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
        let response = try await call("atomicDelete", key: key, .txn, .with {
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

    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(key, start: keySpace.bytes(key), end: [])
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        let (start, end) = keySpace.subtree(prefix)
        return try await startWatch(prefix, start: start, end: end)
    }

    /// Watch first, then the snapshot at exactly the revision the watch starts after: the watch is
    /// served live by etcd (no catch-up delay), and nothing between snapshot and changes is missed.
    private func startWatch(_ key: Key, start: [UInt8], end: [UInt8]) async throws(CoordinationError) -> WatchStream {
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
            throw errors.map(error, "watch", key: key)
        }
        do {
            /// The range at `revision` (0: the current one).
            func read(at revision: Int64, serializable: Bool) async throws(CoordinationError) -> Etcdserverpb_RangeResponse {
                try await call("watch", key: key, .range, .with {
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
                } catch where error.code != .historyLost && error.code != .cancelled && error.code != .storeClosed {
                    response = try await read(at: watch.revision, serializable: false)
                }
            } catch where error.code == .historyLost {
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

    // MARK: - Sessions

    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try validate(ttl: ttl)
        let seconds = max(
            1, Int64((Double(ttl.components.seconds) + Double(ttl.components.attoseconds) / 1e18).rounded(.up)))
        let requestedAt = ContinuousClock.now
        let response = try await call("makeSession", .leaseGrant, .with { $0.ttl = seconds })
        guard response.error.isEmpty, response.id != 0 else {
            throw errors.make(.serverError, "etcd refused a lease: \(response.error)")
        }
        let granted = Duration.seconds(response.ttl)
        let session = Session(
            id: SessionID(leaseID: response.id), ttl: granted, backend: self,
            guaranteedUntil: requestedAt.advanced(by: granted))
        leases.add(response.id, session: session, ttl: granted, requestedAt: requestedAt)
        return session
    }

    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        guard let lease = id.leaseID else {
            throw errors.make(.invalidArgument, "'\(id)' is not an etcd lease id")
        }
        do {
            _ = try await call("revokeSession", .leaseRevoke, .with { $0.id = lease })
        } catch  where error.code == .sessionExpired {
            // Already gone: revoking is idempotent.
        }
        leases.expire(lease)
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        guard let lease = id.leaseID else { return }
        leases.remove(lease)
        do {
            _ = try await call("closeSession", .leaseRevoke, .with { $0.id = lease })
        } catch  where error.code == .sessionExpired {
            // Already gone.
        }
    }

    public func abandonSession(_ id: SessionID) {
        guard let lease = id.leaseID else { return }
        leases.abandon(lease)
    }

    // MARK: - Waiting for a key to go

    /// A waiter's wait for the contender ahead of it: on a watch of that key kept open across
    /// waits (``KeyFollowers``), so the wait never starts on a watch that etcd registered as
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

    // MARK: - Plumbing

    func leaseID(_ session: Session?, key: Key) throws(CoordinationError) -> Int64 {
        guard let session else { return 0 }
        guard session.isActive, let lease = session.id.leaseID else {
            throw errors.make(.sessionExpired, "session \(session.id) has ended; cannot bind a key to it", key: key)
        }
        return lease
    }

    private func metadata() -> [(String, String)] {
        guard let token = authToken.withLock({ $0 }) else { return [] }
        return [("token", token)]
    }

    /// Runs one unary call with the store's deadline, mapping failures to ``CoordinationError``.
    /// With credentials configured it logs in first, and again once if the token was rejected.
    func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ operation: String,
        key: Key? = nil,
        _ rpc: EtcdRPC<Request, Response>,
        _ request: Request
    ) async throws(CoordinationError) -> Response {
        if closed.load(ordering: .acquiring) {
            throw errors.make(.storeClosed, "the store was closed", key: key)
        }
        do {
            if configuration.credentials != nil, authToken.withLock({ $0 }) == nil {
                try await authenticate()
            }
            do {
                return try await onTaskExecutor {
                    try await transport.unary(
                        rpc.path, request, metadata: metadata(), timeout: configuration.requestTimeout, as: Response.self)
                }
            } catch let error as GRPCCallError where error.code == .unauthenticated && configuration.credentials != nil {
                try await authenticate()
                return try await onTaskExecutor {
                    try await transport.unary(
                        rpc.path, request, metadata: metadata(), timeout: configuration.requestTimeout, as: Response.self)
                }
            }
        } catch {
            if Task.isCancelled { throw errors.make(.cancelled, "\(operation) was cancelled", key: key) }
            throw errors.map(error, operation, key: key)
        }
    }

    /// The metadata a long-lived stream opens with: logs in first when credentials are configured
    /// (etcd checks a watch's permissions against the token its stream was opened with).
    @Sendable private func streamMetadata() async throws -> [(String, String)] {
        if configuration.credentials != nil, authToken.withLock({ $0 }) == nil {
            try await authenticate()
        }
        return metadata()
    }

    private func authenticate() async throws {
        guard let credentials = configuration.credentials else { return }
        let response = try await transport.unary(
            EtcdRPC.authenticate.path,
            Etcdserverpb_AuthenticateRequest.with {
                $0.name = credentials.username
                $0.password = credentials.password
            },
            metadata: [],
            timeout: configuration.requestTimeout,
            as: Etcdserverpb_AuthenticateResponse.self
        )
        authToken.withLock { $0 = response.token }
    }
}

// MARK: - Hooks for the tests (reached with @testable import)

extension EtcdStore {
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
        _ = try await call("compact", .compact, .with {
                    $0.revision = Int64(revision.value)
                    $0.physical = true
                })
    }
}
