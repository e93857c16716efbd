@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The ZooKeeper backend, over ZooKeeper's own binary protocol (jute records on TCP, SwiftNIO).
///
/// - The store has a session of its own for reads, watches and unbound writes; every
///   `Session` made with ``makeSession(ttl:)`` is a ZooKeeper session on a connection of its own,
///   with the TTL as its negotiated session timeout, and keys bound to it are its ephemeral znodes.
///   ZooKeeper negotiates timeouts per session and binds ephemerals to one session, so one
///   connection cannot carry several independent TTLs.
/// - Each connection pipelines its requests (matched by xid), pings at a third of the timeout and,
///   when it breaks, resumes the same session on the next ensemble member, registering its watches
///   again. A session is `suspended` while it is between servers and `expired` no later than the
///   negotiated timeout after the last reply (see `ZooKeeperConnectionStateMachine`).
/// - Keys map to znodes under the chroot; see `ZooKeeperPaths` for parents, session markers and
///   contenders (Curator's `_c_<uuid>-lock-<sequence>` layout).
///
/// ```swift
/// let store = try ZooKeeperStore(configuration: .init(endpoints: [.init(host: "127.0.0.1", port: 2181)]))
/// try await store.withRunning { store in /* … */ }
/// ```
public final class ZooKeeperStore: KeyValueStore, SessionBackend {
    public let storeDescription: StoreDescription
    public let limits: StoreLimits
    public let capabilities: StoreCapabilities = [.valuesOnInnerNodes, .revokeForeignSession]
    /// The event loop of all the store's connections, its own and its sessions' (see
    /// `KeyValueStore.taskExecutor`).
    public var taskExecutor: (any TaskExecutor)? { executor }
    let executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())

    let configuration: Configuration
    let paths: ZooKeeperPaths
    let endpoints: [Endpoint]
    /// TLS and `addauth` identities of every connection this store opens.
    let security: ZooKeeperClient.Security
    /// The ACL of every node this store creates: world-open without credentials; with them, all
    /// permissions for the authenticated identities (`auth`, ZooKeeper's CREATOR_ALL_ACL), plus
    /// world READ when ``Configuration/worldReadable``.
    let nodeACL: [ACL]
    let state = Mutex(StoreState())
    private let stopped = WakeSignal()

    struct SessionRecord {
        var client: ZooKeeperClient
        var session: Session
    }

    struct Listener {
        var client: ObjectIdentifier
        var path: String
        var recursive: Bool
        var continuation: AsyncStream<ZooKeeperClient.Event>.Continuation
    }

    struct StoreState {
        var closed = false
        var primary: ZooKeeperClient?
        var connecting: Task<ZooKeeperClient, any Error>?
        var sessions: [SessionID: SessionRecord] = [:]
        var listeners: [Int: Listener] = [:]
        var nextListener = 0
        /// Contender znodes this store created: path → (mzxid, version). Their names are unique
        /// (a random uuid), so a version read at creation still names the same incarnation, and a
        /// guarded release needs no read first.
        var ownContenders: [String: (mzxid: Int64, version: Int32)] = [:]
    }

    public init(configuration: Configuration) throws(CoordinationError) {
        try Endpoint.validate(configuration.endpoints, backend: "zookeeper")
        self.configuration = configuration
        self.paths = try ZooKeeperPaths(chroot: configuration.chroot)
        self.endpoints = configuration.endpoints
        let endpoint = endpoints.map(\.description).joined(separator: ",") + paths.chroot
        self.storeDescription = StoreDescription(backend: "zookeeper", endpoint: endpoint)
        var security = ZooKeeperClient.Security()
        if let tls = configuration.tls {
            security.tls = (try tls.clientContext(store: storeDescription, logger: configuration.logger), tls)
        }
        if let credentials = configuration.credentials {
            guard !credentials.username.isEmpty, !credentials.username.contains(":") else {
                throw storeDescription.error(
                    .invalidArgument, "a ZooKeeper digest user name must be non-empty and contain no ':'")
            }
            security.authentication = [("digest", Array("\(credentials.username):\(credentials.password)".utf8))]
            nodeACL =
                [ACL(permissions: ACL.allPermissions, scheme: "auth", id: "")]
                + (configuration.worldReadable ? [ACL(permissions: ACL.read, scheme: "world", id: "anyone")] : [])
        } else {
            nodeACL = ACL.openUnsafe
        }
        self.security = security
        self.limits = StoreLimits(
            maxValueSize: configuration.maxValueSize,
            minimumSessionTTL: configuration.followerBound + configuration.minimumSessionTTL,
            maximumSessionTTL: configuration.maximumSessionTTL,
            defaultSessionTTL: configuration.followerBound + StoreLimits.defaultGuarantee)
    }

    // MARK: - Service

    /// The store's connections run on their own event loops; `run()` only keeps the service alive
    /// until it is cancelled or closed, or (in a `ServiceGroup`) until graceful shutdown, which
    /// closes the store.
    public func run() async throws {
        try await runClosingOnGracefulShutdown {
            await withTaskCancellationHandler {
                await stopped.wait()
            } onCancel: {
                stopped.signal()
            }
        }
        await close()
    }

    public func close() async {
        let (primary, connecting, sessions, listeners) = state.withLock { state in
            let result = (state.primary, state.connecting, Array(state.sessions.values), Array(state.listeners.values))
            state.closed = true
            state.primary = nil
            state.connecting = nil
            state.sessions.removeAll()
            state.listeners.removeAll()
            return result
        }
        for listener in listeners { listener.continuation.finish() }
        connecting?.cancel()
        await withTaskGroup(of: Void.self) { group in
            for record in sessions {
                group.addTask {
                    // Closed before CloseSession goes out, as in `closeSession`: the connection's
                    // end that follows is no expiry.
                    record.session.transition(to: .closed)
                    await record.client.close()
                }
            }
            if let primary { group.addTask { await primary.close() } }
        }
        stopped.signal()
    }

    // MARK: - Connections

    /// The store's own session, opened on first use and again after it expired.
    func primary() async throws(CoordinationError) -> ZooKeeperClient {
        enum Step {
            case ready(ZooKeeperClient)
            case wait(Task<ZooKeeperClient, any Error>)
        }
        let step: Step = try state.withLock { state throws(CoordinationError) -> Step in
            if state.closed { throw closedError() }
            if let primary = state.primary { return .ready(primary) }
            if let connecting = state.connecting { return .wait(connecting) }
            let endpoints = self.endpoints
            let configuration = self.configuration
            let task = Task { () throws -> ZooKeeperClient in
                let client = try await ZooKeeperClient.connect(
                    endpoints: endpoints, sessionTimeout: configuration.sessionTimeout,
                    connectTimeout: configuration.connectTimeout, security: self.security,
                    group: self.executor.eventLoop,
                    handler: { [weak self] client, event in self?.dispatch(event, of: client) },
                    firstEndpoint: configuration.shuffleEndpoints ? nil : 0)
                self.adoptPrimary(client)
                return client
            }
            state.connecting = task
            return .wait(task)
        }
        switch step {
        case .ready(let client):
            return client
        case .wait(let task):
            do {
                return try await task.value
            } catch {
                state.withLock { state in
                    if state.connecting == task { state.connecting = nil }
                }
                throw (error as? CoordinationError)
                    ?? CoordinationError(.connectionFailed, "\(error)", backend: "zookeeper")
            }
        }
    }

    private func adoptPrimary(_ client: ZooKeeperClient) {
        let adopted = state.withLock { state -> Bool in
            state.connecting = nil
            guard !state.closed else { return false }
            state.primary = client
            return true
        }
        guard adopted else {
            Task { await client.close() }
            return
        }
    }

    /// Fans the store session's events out to the watchers listening on it, in order, on the
    /// client's event loop. When the session ends, the store forgets it (the next call opens a new
    /// one) and its watchers hear of it.
    private func dispatch(_ event: ZooKeeperClient.Event, of client: ZooKeeperClient) {
        let id = ObjectIdentifier(client)
        state.withLock { state in
            if case .state(let newState) = event, newState.isTerminal, state.primary === client {
                state.primary = nil
            }
            for listener in state.listeners.values where listener.client == id {
                switch event {
                case .notification(let notification):
                    let path = notification.path
                    if path == listener.path || (listener.recursive && path.hasPrefix(listener.path + "/")) {
                        listener.continuation.yield(event)
                    }
                case .resumed, .state:
                    listener.continuation.yield(event)
                }
            }
        }
    }

    /// Registers a listener for notifications on `path` (and below it when `recursive`) of
    /// `client`'s session, and for its resumptions and end.
    func listen(_ client: ZooKeeperClient, path: String, recursive: Bool) -> (
        id: Int, events: AsyncStream<ZooKeeperClient.Event>
    ) {
        let (stream, continuation) = AsyncStream.makeStream(of: ZooKeeperClient.Event.self)
        let id = state.withLock { state in
            let id = state.nextListener
            state.nextListener += 1
            state.listeners[id] = Listener(
                client: ObjectIdentifier(client), path: path, recursive: recursive, continuation: continuation)
            return id
        }
        return (id, stream)
    }

    func stopListening(_ id: Int) {
        let listener = state.withLock { $0.listeners.removeValue(forKey: id) }
        listener?.continuation.finish()
    }

    /// The connection that writes keys bound to `session`.
    func client(for session: Session) throws(CoordinationError) -> ZooKeeperClient {
        let record = try state.withLock { state throws(CoordinationError) -> SessionRecord? in
            if state.closed { throw closedError() }
            return state.sessions[session.id]
        }
        guard let record, session.isActive else {
            throw CoordinationError(
                .sessionExpired, "session \(session.id) has ended (\(session.state)); it cannot bind keys",
                backend: "zookeeper", endpoint: storeDescription.endpoint)
        }
        return record.client
    }

    // MARK: - Errors

    func closedError() -> CoordinationError {
        storeDescription.error(.storeClosed, "the store is closed")
    }

    /// `error` with the key and operation named.
    func failure(_ error: CoordinationError, _ operation: String, key: Key?) -> CoordinationError {
        CoordinationError(
            error.code, "\(operation): \(error.message)", key: key?.path ?? error.key, backend: "zookeeper",
            endpoint: error.endpoint ?? storeDescription.endpoint, underlying: error.underlying)
    }

    func make(_ code: CoordinationError.Code, _ message: String, key: Key?) -> CoordinationError {
        storeDescription.error(code, message, key: key)
    }

    func entry(_ key: Key, _ value: [UInt8], _ stat: Stat) -> Entry {
        Entry(
            key: key, value: value, createRevision: Revision(UInt64(stat.czxid)),
            modifyRevision: Revision(UInt64(stat.mzxid)), session: ZooKeeperPaths.owner(stat.ephemeralOwner))
    }
}
