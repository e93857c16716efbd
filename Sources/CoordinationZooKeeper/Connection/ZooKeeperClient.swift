@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import NIOCore
import NIOPosix
import NIOSSL

/// A host and port of one ensemble member.
/// One ZooKeeper session, kept across TCP connections: the handshake, pipelined requests matched
/// by xid, pings, watch notifications, and — when a connection breaks — a new connection to the
/// next ensemble member that resumes the same session (id and password) and re-registers the
/// session's watches (SetWatches2, from the last zxid seen, so the server fires what was missed).
///
/// The protocol rules live in ``ZooKeeperConnectionStateMachine``; this class carries out its
/// actions. Every mutable field is confined to ``eventLoop``; public entry points hop onto it.
final class ZooKeeperClient: @unchecked Sendable {
    typealias Machine = ZooKeeperConnectionStateMachine<ContinuousClock.Instant>

    /// How the session's state changed, delivered on the event loop in order.
    enum Event: Sendable {
        /// A watch notification.
        case notification(WatcherEvent)
        /// The session moved to a new connection; its watches are registered again. Watchers
        /// re-read what they watch: a persistent watch does not replay what happened meanwhile.
        case resumed
        case state(SessionState)
    }

    let eventLoop: any EventLoop
    let endpoints: [Endpoint]
    let connectTimeout: Duration
    /// The session's events (notifications, resumptions, state changes); finishes when the
    /// session ends. Empty when the client was made with a handler, which gets them instead.
    let events: AsyncStream<Event>
    private let eventContinuation: AsyncStream<Event>.Continuation
    /// Called on the event loop with every event, in order, when given: no task hop between a
    /// server's notification and whoever waits for it.
    private let handler: (@Sendable (ZooKeeperClient, Event) -> Void)?
    private var endReported = false

    // Loop-confined state.
    private var machine: Machine
    private var endpointIndex: Int
    private var channel: (any Channel)?
    private var generation = 0
    private var decoder = ZooKeeperFrameDecoder()
    private var promises: [Int32: EventLoopPromise<Reply>] = [:]
    /// Requests made while the session is between connections: sent once it is resumed.
    private var queued: [Waiting] = []
    /// The reads in flight, by xid. A read whose reply a broken connection swallowed is sent again
    /// once the session resumes (once: `resent`); a write's outcome is unknown then, so writes fail.
    private var reads: [Int32: (request: ZooKeeperRequest, resent: Bool)] = [:]
    private var closePromises: [EventLoopPromise<Void>] = []
    private var timer: Scheduled<Void>?
    /// When `timer` fires.
    private var timerDeadline: ContinuousClock.Instant?
    private var established: EventLoopPromise<Void>?
    private var abandoned = false
    private var hasBeenAlive = false
    /// Watches to register again after a reconnect.
    private var persistentWatches: [String: (mode: AddWatchMode, count: Int)] = [:]
    private var dataWatches: Set<String> = []
    private var existWatches: Set<String> = []
    private(set) var currentEndpoint: Endpoint
    /// Told every new ``ZooKeeperConnectionStateMachine/guaranteedUntil`` as soon as a reply moves
    /// it (the owning ``Session``'s deadline), so a check after a pause needs no timer to have run.
    private var guaranteeSink: (@Sendable (ContinuousClock.Instant) -> Void)?
    private var publishedGuarantee: ContinuousClock.Instant?

    /// A reply and the zxid in its header (the server's last committed zxid when it answered).
    struct Reply: Sendable {
        var response: ZooKeeperResponse
        var zxid: Int64
    }

    /// What a connection proves and carries beyond plain TCP: TLS (the context made once from the
    /// store's files, and the settings for the name to verify) and the identities added after
    /// every handshake (`addauth`).
    struct Security: Sendable {
        var tls: (context: NIOSSLContext, settings: TLSSettings)?
        var authentication: [(scheme: String, credential: [UInt8])] = []

        static let none = Security()
    }

    private let security: Security

    private init(
        endpoints: [Endpoint], sessionTimeout: Duration, connectTimeout: Duration, followerBound: Duration,
        security: Security, eventLoop: any EventLoop, handler: (@Sendable (ZooKeeperClient, Event) -> Void)?,
        firstEndpoint: Int?
    ) {
        self.security = security
        self.handler = handler
        precondition(!endpoints.isEmpty, "a ZooKeeper client needs at least one endpoint")
        self.eventLoop = eventLoop
        self.endpoints = endpoints
        self.connectTimeout = connectTimeout
        self.machine = Machine(
            configuration: .init(
                requestedTimeout: sessionTimeout, followerBound: followerBound, authentication: security.authentication)
        )
        let start = firstEndpoint.map { min(max($0, 0), endpoints.count - 1) } ?? Int.random(in: 0..<endpoints.count)
        self.endpointIndex = start
        self.currentEndpoint = endpoints[start]
        (events, eventContinuation) = AsyncStream.makeStream(of: Event.self)
        if handler != nil { eventContinuation.finish() }
    }

    /// Opens a new session on one of `endpoints` (tried in turn from `firstEndpoint`, or from a
    /// random one so that clients spread over the ensemble), failing with
    /// `connectionFailed` if none answers within `connectTimeout`.
    static func connect(
        endpoints: [Endpoint],
        sessionTimeout: Duration,
        connectTimeout: Duration = .seconds(5),
        followerBound: Duration = .zero,
        security: Security = .none,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        handler: (@Sendable (ZooKeeperClient, Event) -> Void)? = nil,
        firstEndpoint: Int? = nil
    ) async throws(CoordinationError) -> ZooKeeperClient {
        let client = ZooKeeperClient(
            endpoints: endpoints, sessionTimeout: sessionTimeout, connectTimeout: connectTimeout,
            followerBound: followerBound, security: security, eventLoop: group.next(), handler: handler,
            firstEndpoint: firstEndpoint)
        let future = client.eventLoop.flatSubmit { client.start() }
        do {
            try await future.get()
        } catch {
            await client.close()
            throw client.attributed(error)
        }
        return client
    }

    /// The member this session is connected to (or was last tried).
    func endpoint() async -> Endpoint? {
        try? await eventLoop.submit { self.currentEndpoint }.get()
    }

    /// The negotiated session facts (id, timeout), read on the loop.
    func session() async -> Machine.Session? {
        try? await eventLoop.submit { self.machine.session }.get()
    }

    /// From now on, tells `sink` the instant the session is guaranteed until, at once and after
    /// every reply that moves it.
    func publishGuarantee(to sink: @escaping @Sendable (ContinuousClock.Instant) -> Void) async {
        try? await eventLoop.submit {
            self.guaranteeSink = sink
            self.publishedGuarantee = self.machine.guaranteedUntil
            if let until = self.publishedGuarantee { sink(until) }
        }.get()
    }

    /// Sends one request and waits for its reply. Server errors arrive as ``CoordinationError``s
    /// whose `underlying` is the ``ZooKeeperErrorCode``. A request made while the session is between
    /// connections waits for the resumption. When a connection breaks, a read in flight is sent
    /// again on the resumed session (once); a write in flight fails with `connectionFailed`, since
    /// its outcome is then unknown.
    func send(_ request: ZooKeeperRequest) async throws(CoordinationError) -> Reply {
        try await Telemetry.storeCall(backend: "zookeeper", operation: "\(request.opCode)") {
            () async throws(CoordinationError) in
            try await sendUntraced(request)
        }
    }

    private func sendUntraced(_ request: ZooKeeperRequest) async throws(CoordinationError) -> Reply {
        let promise = eventLoop.makePromise(of: Reply.self)
        // A caller already on the loop (a recipe under the store's task executor) sends at once.
        if eventLoop.inEventLoop {
            dispatch(request, promise)
        } else {
            eventLoop.execute { self.dispatch(request, promise) }
        }
        do {
            return try await promise.futureResult.get()
        } catch {
            throw attributed(error)
        }
    }

    /// Sends several requests back to back (pipelined: one round trip) and returns their replies in
    /// order, each as a `Result`.
    func sendAll(_ requests: [ZooKeeperRequest]) async -> [Result<Reply, CoordinationError>] {
        let promises = requests.map { _ in eventLoop.makePromise(of: Reply.self) }
        if eventLoop.inEventLoop {
            for (request, promise) in zip(requests, promises) { dispatch(request, promise) }
        } else {
            eventLoop.execute {
                for (request, promise) in zip(requests, promises) { self.dispatch(request, promise) }
            }
        }
        var results: [Result<Reply, CoordinationError>] = []
        results.reserveCapacity(requests.count)
        for promise in promises {
            do {
                results.append(.success(try await promise.futureResult.get()))
            } catch {
                results.append(.failure(attributed(error)))
            }
        }
        return results
    }

    /// Registers a persistent (recursive) watch on `path`, shared by every local watcher of the
    /// same path and mode; the server is asked only for the first.
    func addPersistentWatch(_ path: String, mode: AddWatchMode) async throws(CoordinationError) {
        let first = try? await eventLoop.submit { () -> Bool in
            var entry = self.persistentWatches[path] ?? (mode, 0)
            entry.count += 1
            self.persistentWatches[path] = entry
            return entry.count == 1
        }.get()
        guard first == true else { return }
        do {
            _ = try await send(.addWatch(path: path, mode: mode))
        } catch {
            await releasePersistentWatch(path)
            throw error
        }
    }

    /// Drops one local user of a persistent watch; the last one removes it on the server.
    func releasePersistentWatch(_ path: String) async {
        let last = try? await eventLoop.submit { () -> Bool in
            guard var entry = self.persistentWatches[path] else { return false }
            entry.count -= 1
            if entry.count <= 0 {
                self.persistentWatches[path] = nil
                return !self.dataWatches.contains(path) && !self.existWatches.contains(path)
            }
            self.persistentWatches[path] = entry
            return false
        }.get()
        if last == true { _ = try? await send(.removeWatches(path: path)) }
    }

    /// Ends the session (CloseSession: its ephemeral nodes go at once) and the connection.
    /// Idempotent; bounded by the connect timeout.
    func close() async {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute {
            self.closePromises.append(promise)
            self.run(self.machine.close(now: .now))
            if self.channel == nil { self.finishClosing() }
        }
        let deadline = eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(connectTimeout))) {
            self.channel?.close(promise: nil)
            self.finishClosing()
        }
        try? await promise.futureResult.get()
        deadline.cancel()
    }

    /// Stops the session's pings and drops the connection without CloseSession, exactly as a
    /// crashed process would: the server expires the session one timeout later, and this client
    /// reports `suspended`, then `expired` by the safety rule.
    func abandon() {
        eventLoop.execute {
            self.abandoned = true
            self.channel?.close(promise: nil)
        }
    }

    // MARK: Loop-confined machinery

    private func start() -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        established = promise
        // The first session must be established within the connect timeout, whatever the number
        // of members tried.
        eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(connectTimeout))) {
            guard let established = self.established else { return }
            self.established = nil
            established.fail(
                CoordinationError(
                    .connectionFailed,
                    "no ZooKeeper server of \(self.endpoints.map(\.description).joined(separator: ",")) "
                        + "established a session within \(self.connectTimeout)"
                        + (self.lastConnectFailure.map { " (last: \($0))" } ?? ""),
                    backend: "zookeeper"))
        }
        run(machine.start())
        return promise.futureResult
    }

    /// A request waiting for the session to be resumed on a connection.
    private struct Waiting {
        var request: ZooKeeperRequest
        var promise: EventLoopPromise<Reply>
        var resent = false
    }

    private func dispatch(_ request: ZooKeeperRequest, _ promise: EventLoopPromise<Reply>, resent: Bool = false) {
        switch machine.state {
        case .connecting, .handshaking, .disconnected:
            if hasBeenAlive {
                queued.append(Waiting(request: request, promise: promise, resent: resent))
                return
            }
        default: break
        }
        let (xid, actions) = machine.send(request, now: .now)
        promises[xid] = promise
        if request.isRead { reads[xid] = (request, resent) }
        noteWatch(request)
        run(actions)
    }

    /// Remembers one-shot watches so that they can be registered again on another connection.
    private func noteWatch(_ request: ZooKeeperRequest) {
        switch request {
        case .getData(let path, true): dataWatches.insert(path)
        case .exists(let path, true): existWatches.insert(path)
        default: break
        }
    }

    /// Why the last connection attempt failed, for the error of a first session never established.
    private var lastConnectFailure: String?

    private func connect() {
        guard !abandoned else { return }
        generation += 1
        let generation = self.generation
        let endpoint = endpoints[endpointIndex]
        endpointIndex = (endpointIndex + 1) % endpoints.count
        currentEndpoint = endpoint
        decoder = ZooKeeperFrameDecoder()
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Self.nanoseconds(connectTimeout)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [security] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = security.tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(
                                context: tls.context,
                                serverHostname: tls.settings.expectedServerName(connectingTo: endpoint.host)))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ZooKeeperClientHandler(client: self, generation: generation))
                }
            }
        bootstrap.connect(host: endpoint.host, port: endpoint.port).whenComplete { result in
            guard generation == self.generation else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let channel):
                if self.abandoned || self.machine.state.isFinished {
                    channel.close(promise: nil)
                    return
                }
                self.channel = channel
                self.run(self.machine.connectionEstablished(now: .now))
            case .failure(let error):
                self.lastConnectFailure = "\(endpoint): \(ConnectFailure.describe(error))"
                self.run(self.machine.connectionClosed(now: .now))
            }
        }
    }

    fileprivate func received(_ bytes: ByteBuffer, generation: Int) {
        guard generation == self.generation else { return }
        decoder.append(bytes)
        do {
            while let frame = try decoder.nextFrame() {
                run(machine.received(frame, now: .now))
            }
        } catch {
            channel?.close(promise: nil)
        }
    }

    /// TLS with the member refused us (an untrusted or misnamed certificate, or the member refused
    /// ours). Before the first session exists this fails the connect at once, naming TLS: trying
    /// the other members with the same files would fail alike. (A connection that closes during
    /// the handshake is not a refusal: it counts as broken, and the next member is tried.) Later, the session keeps trying
    /// members as after any broken connection.
    fileprivate func handshakeFailed(_ error: any Error, generation: Int) {
        guard generation == self.generation, let established else { return }
        self.established = nil
        established.fail(
            CoordinationError(
                .connectionFailed,
                "TLS with the ZooKeeper server \(currentEndpoint) failed: \(ConnectFailure.describe(error))",
                backend: "zookeeper"))
    }

    fileprivate func closed(generation: Int) {
        guard generation == self.generation else { return }
        channel = nil
        run(machine.connectionClosed(now: .now))
        if machine.state.isFinished { finishClosing() }
    }

    private func run(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .connect:
                connect()
            case .reconnect(let delay):
                eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(delay))) { self.connect() }
            case .write(let frame):
                channel?.writeAndFlush(frame, promise: nil)
            case .closeConnection:
                channel?.close(promise: nil)
            case .succeed(let xid, let response, let zxid):
                reads[xid] = nil
                promises.removeValue(forKey: xid)?.succeed(Reply(response: response, zxid: zxid))
            case .fail(let xid, let error):
                let read = reads.removeValue(forKey: xid)
                guard let promise = promises.removeValue(forKey: xid) else { break }
                if let read, !read.resent, error.code == .connectionFailed, hasBeenAlive {
                    // The connection broke before the reply: read again on the resumed session.
                    queued.append(Waiting(request: read.request, promise: promise, resent: true))
                } else {
                    promise.fail(error)
                }
            case .watchEvent(let event):
                forgetFiredWatch(event)
                emit(.notification(event))
            case .sessionState(let state):
                sessionStateChanged(state)
            case .protocolError(let error):
                failAll(error)
            }
        }
        if let until = machine.guaranteedUntil, until != publishedGuarantee {
            publishedGuarantee = until
            guaranteeSink?(until)
        }
        schedule()
    }

    private func forgetFiredWatch(_ event: WatcherEvent) {
        switch event.type {
        case .nodeCreated, .nodeDeleted, .nodeDataChanged:
            dataWatches.remove(event.path)
            existWatches.remove(event.path)
        default: break
        }
    }

    private func sessionStateChanged(_ state: SessionState) {
        switch state {
        case .alive:
            if let established {
                self.established = nil
                hasBeenAlive = true
                established.succeed(())
            } else if hasBeenAlive {
                resumed()
            }
        case .expired, .closed:
            let error =
                state == .expired
                ? CoordinationError(.sessionExpired, "the ZooKeeper session has expired", backend: "zookeeper")
                : CoordinationError(.sessionClosed, "the ZooKeeper session was closed", backend: "zookeeper")
            failAll(error)
        case .suspended:
            break
        }
        emit(.state(state))
    }

    /// A new connection carries the session: register its watches first (the server replays what
    /// changed after the last zxid seen for one-shot watches), then send what waited.
    private func resumed() {
        let persistent = persistentWatches.filter { $0.value.mode == .persistent }.map(\.key).sorted()
        let recursive = persistentWatches.filter { $0.value.mode == .persistentRecursive }.map(\.key).sorted()
        if !persistent.isEmpty || !recursive.isEmpty || !dataWatches.isEmpty || !existWatches.isEmpty {
            let registrations = WatchRegistrations(
                relativeZxid: machine.lastZxidSeen, data: dataWatches.sorted(), exist: existWatches.sorted(),
                child: [], persistent: persistent, persistentRecursive: recursive)
            let (_, actions) = machine.send(.setWatches(registrations), now: .now)
            run(actions)
        }
        let waiting = queued
        queued.removeAll()
        for request in waiting { dispatch(request.request, request.promise, resent: request.resent) }
        emit(.resumed)
    }

    private func failAll(_ error: CoordinationError) {
        if let established {
            self.established = nil
            established.fail(error)
        }
        let pending = promises
        promises.removeAll()
        reads.removeAll()
        for promise in pending.values { promise.fail(error) }
        let waiting = queued
        queued.removeAll()
        for request in waiting { request.promise.fail(error) }
    }

    private func finishClosing() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        if !machine.state.isFinished {
            run(machine.close(now: .now))
        }
        failAll(CoordinationError(.sessionClosed, "the ZooKeeper session was closed", backend: "zookeeper"))
        let waiting = closePromises
        closePromises.removeAll()
        for promise in waiting { promise.succeed(()) }
        emit(.state(.closed))
    }

    /// Hands an event to the handler or the stream; after the session's end, nothing more.
    private func emit(_ event: Event) {
        guard !endReported else { return }
        if case .state(let state) = event, state.isTerminal { endReported = true }
        if let handler {
            handler(self, event)
        } else {
            eventContinuation.yield(event)
            if endReported { eventContinuation.finish() }
        }
    }

    /// Wakes up at the state machine's next deadline (pings, suspension, expiry), or earlier: a
    /// timer already due no later than the next deadline is kept, since `tick` does only what is due
    /// and the wake-up schedules the next one. (Every request and reply moves the ping deadline
    /// later; replacing the timer each time cost a cancellation and a new timer per message.) The
    /// timer never fires after a deadline, so `expired` is still reported in time.
    private func schedule() {
        guard let deadline = machine.nextDeadline() else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        if timer != nil, let current = timerDeadline, current <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        let delay = ContinuousClock.now.duration(to: deadline)
        timer = eventLoop.scheduleTask(in: .nanoseconds(max(0, Self.nanoseconds(delay)))) {
            self.timer = nil
            self.timerDeadline = nil
            self.run(self.machine.tick(now: .now))
        }
    }

    private func attributed(_ error: any Error) -> CoordinationError {
        let endpoint = currentEndpoint.description
        if let error = error as? CoordinationError { return error.attributed(backend: "zookeeper", endpoint: endpoint) }
        return CoordinationError(
            .connectionFailed, "ZooKeeper connection failed", backend: "zookeeper", endpoint: endpoint,
            underlying: error)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension ZooKeeperConnectionStateMachine.State {
    /// Closed or expired: nothing will happen on this session any more.
    var isFinished: Bool {
        switch self {
        case .closed, .expired: true
        default: false
        }
    }
}

/// The thin I/O side of one TCP connection: bytes in, closure out, both forwarded to the client on
/// its event loop. A handler of an earlier connection (an older generation) is ignored.
private final class ZooKeeperClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let client: ZooKeeperClient
    private let generation: Int

    init(client: ZooKeeperClient, generation: Int) {
        self.client = client
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.received(unwrapInboundIn(data), generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.closed(generation: generation)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if Self.isTLSRefusal(error) {
            client.handshakeFailed(error, generation: generation)
        }
        context.close(promise: nil)
    }

    /// A TLS failure another member would not cure (a certificate refused, by either side), as
    /// opposed to the connection closing during the handshake (a member stopping, a path breaking),
    /// which is a broken connection like any other.
    static func isTLSRefusal(_ error: any Error) -> Bool {
        switch error {
        case NIOSSLError.handshakeFailed(.sslError(let stack)) where stack == [.eofDuringHandshake]: false
        case NIOSSLError.uncleanShutdown: false
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError: true
        default: false
        }
    }
}

extension ZooKeeperRequest {
    /// Reads change nothing on the server, so one whose reply was lost can simply be sent again.
    fileprivate var isRead: Bool {
        switch self {
        case .exists, .getData, .getChildren2, .sync: true
        default: false
        }
    }
}
