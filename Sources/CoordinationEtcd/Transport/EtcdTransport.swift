@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import Logging
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import SwiftProtobuf

/// Something waiting for the transport's connection. Called on the event loop.
protocol ConnectionWaiter: AnyObject {
    func connectionReady(_ result: Result<GRPCStreamsHandler, GRPCCallError>)
}

/// One store's gRPC client: a single HTTP/2 connection, to one etcd member at a time, that carries
/// every call of the store as a stream (``GRPCStreamsHandler``).
///
/// - A call made while there is no connection waits for one (gRPC's "wait for ready") until its
///   deadline; the connection is made on demand, trying the members in turn, with a capped backoff
///   after each full round of refusals.
/// - When the connection breaks or the member says GOAWAY, calls in flight fail with `unavailable`
///   (their outcome is unknown to us) and the next call connects to the next member.
/// - A member that stops answering without closing the connection is found three ways: after a
///   call times out, when a lease keep-alive is late (``checkLiveness(timeout:)``, with a fifth of
///   the lease's TTL to answer), and by a keepalive PING after ``keepaliveInterval`` without a word
///   from the member while streams are open. A PING unanswered in time closes the connection; its
///   streams (the lease keep-alives, the watches) reopen on the next member.
///
/// All state lives on one event loop, the store's; a call made on that loop (the store's task
/// executor) starts and completes without a thread hop.
final class EtcdTransport: @unchecked Sendable {
    enum State {
        case idle
        case connecting
        case backingOff
        case ready(GRPCStreamsHandler)
        case closed
    }

    static let livenessTimeout = TimeAmount.seconds(2)
    /// Keepalive: a connection that carries streams and has heard nothing from its member for this
    /// long sends a PING, which must be answered within ``livenessTimeout``. etcd refuses PINGs
    /// closer together than its `--grpc-keepalive-min-time` (5 s by default).
    static let keepaliveInterval = TimeAmount.seconds(10)

    /// The TLS context of a store's connections, made once from the configuration's PEM files
    /// (ALPN `h2`), and the settings it was made from.
    struct TLS: Sendable {
        let context: NIOSSLContext
        let settings: TLSSettings

        init(_ settings: TLSSettings, errors: EtcdErrorMapper, logger: Logger) throws(CoordinationError) {
            context = try settings.clientContext(applicationProtocols: ["h2"], store: errors.store, logger: logger)
            self.settings = settings
        }

        func serverName(for host: String) -> String? { settings.expectedServerName(connectingTo: host) }
    }

    let eventLoop: any EventLoop
    let allocator = ByteBufferAllocator()
    private let endpoints: [Endpoint]
    private let tls: TLS?
    private let connectTimeout: TimeAmount
    private let maximumMessageSize: Int
    private let logger: Logger

    // Event-loop state.
    private var state: State = .idle
    private var waiters: [any ConnectionWaiter] = []
    private var nextEndpoint = 0
    private var failuresInRow = 0
    private var lastFailure = "no connection attempt finished yet"
    private var livenessCheck: GRPCStreamsHandler?
    /// The first stream id of each new connection, and the id past which it is retired: 1 and
    /// ``GRPCStreamsHandler/retirementStreamID``, except in tests that reach the end of the stream
    /// ids quickly.
    var firstStreamID = 1
    var retirementStreamID = GRPCStreamsHandler.retirementStreamID
    /// How many connections were opened (for tests).
    private(set) var connectionsOpened = 0

    init(
        endpoints: [Endpoint],
        tls: TLS?,
        eventLoop: any EventLoop,
        connectTimeout: Duration,
        maximumMessageSize: Int,
        logger: Logger
    ) {
        precondition(!endpoints.isEmpty)
        self.endpoints = endpoints
        self.tls = tls
        self.eventLoop = eventLoop
        self.connectTimeout = TimeAmount(connectTimeout)
        self.maximumMessageSize = maximumMessageSize
        self.logger = logger
    }

    // MARK: - Calls

    /// One unary call: `request` to `path`, the single response back, or a ``GRPCCallError``
    /// (`deadlineExceeded` at `timeout`, `unavailable` if no member could be reached in time). A
    /// `readOnly` call is also sent again once when its connection breaks under it.
    func unary<Response: SwiftProtobuf.Message>(
        _ path: String,
        _ request: some SwiftProtobuf.Message,
        metadata: [(String, String)],
        timeout: Duration,
        readOnly: Bool = false,
        as: Response.Type = Response.self
    ) async throws -> Response {
        let message = try GRPCWire.frame(request, allocator: allocator)
        let call = UnaryCall<Response>(
            transport: self, path: path, message: message, metadata: metadata, timeout: timeout, readOnly: readOnly)
        return try await onLoop(call.start, cancel: call.cancel)
    }

    /// Opens a bidirectional stream to `path` once there is a connection (waits without a
    /// deadline, until cancelled).
    func openStream<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String,
        metadata: [(String, String)],
        requests: Request.Type,
        responses: Response.Type
    ) async throws -> GRPCBidiStream<Request, Response> {
        let stream = GRPCBidiStream<Request, Response>(transport: self, path: path, metadata: metadata)
        try await onLoop(stream.open, cancel: stream.cancel)
        return stream
    }

    /// Hands a continuation to `start` on the event loop (at once when already on it) and runs
    /// `cancel` there if the task is cancelled; `start` and `cancel` settle the continuation.
    private func onLoop<Result>(
        _ start: @escaping @Sendable (UnsafeContinuation<Result, any Error>) -> Void,
        cancel: @escaping @Sendable () -> Void
    ) async throws -> Result {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                execute { start(continuation) }
            }
        } onCancel: {
            eventLoop.execute(cancel)
        }
    }

    /// Runs `body` on the event loop: at once when already on it.
    func execute(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    /// Closes the connection; calls in flight and waiting fail, later ones fail at once.
    func shutdown() async {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute {
            let previous = self.state
            self.state = .closed
            let waiting = self.waiters
            self.waiters.removeAll()
            for waiter in waiting {
                waiter.connectionReady(.failure(GRPCCallError(.unavailable, "the store was closed")))
            }
            if case .ready(let handler) = previous {
                handler.close(GRPCCallError(.unavailable, "the store was closed"))
            }
            promise.succeed()
        }
        try? await promise.futureResult.get()
    }

    // MARK: - The connection (event loop only)

    /// Hands `waiter` a usable connection now, or once there is one.
    func whenReady(_ waiter: any ConnectionWaiter) {
        switch state {
        case .ready(let handler) where handler.isUsable:
            waiter.connectionReady(.success(handler))
        case .closed:
            waiter.connectionReady(.failure(GRPCCallError(.unavailable, "the store was closed")))
        case .ready:
            waiters.append(waiter)
            state = .idle
            connect()
        case .idle:
            waiters.append(waiter)
            connect()
        case .connecting, .backingOff:
            waiters.append(waiter)
        }
    }

    func removeWaiter(_ waiter: any ConnectionWaiter) {
        waiters.removeAll { $0 === waiter }
    }

    /// Why the last attempt to connect failed (for errors of calls that never got a connection).
    var connectFailure: String { lastFailure }

    /// From any thread: why no member can be reached, while that is so (no connection, and the
    /// last attempt failed); `nil` while connected. Turns a watch's "not created in time" into
    /// the cause.
    func unreachableReason() async -> String? {
        try? await eventLoop.submit { () -> String? in
            if case .ready = self.state { return nil }
            return self.failuresInRow > 0 ? self.lastFailure : nil
        }.get()
    }

    /// From any thread: is the member of the current connection still answering? A PING must be
    /// answered (or any frame arrive) within `timeout`, or the connection is closed and its streams
    /// move to the next member.
    func checkLiveness(timeout: Duration) {
        eventLoop.execute {
            guard case .ready(let current) = self.state else { return }
            self.checkLiveness(of: current, within: TimeAmount(timeout))
        }
    }

    /// After a call on `handler` timed out: is the member still answering?
    func checkLiveness(of handler: GRPCStreamsHandler, within timeout: TimeAmount = EtcdTransport.livenessTimeout) {
        guard case .ready(let current) = state, current === handler, livenessCheck == nil else { return }
        livenessCheck = handler
        handler.heardFromServer = false
        handler.ping()
        eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.livenessCheck = nil
            guard handler.isUsable, !handler.heardFromServer else { return }
            self.logger.info(
                "etcd member stopped answering; reconnecting", metadata: ["member": "\(handler.authority)"])
            handler.close(GRPCCallError(.unavailable, "\(handler.authority) stopped answering"))
        }
    }

    /// Every ``keepaliveInterval`` while `handler` is the current connection: if it carries streams
    /// (a watch, the lease keep-alives) and nothing came from the member meanwhile, check that the
    /// member still answers. Without it a stopped or cut-off member would hold the streams until
    /// the leases ran out.
    private func keepAlive(_ handler: GRPCStreamsHandler) {
        eventLoop.assumeIsolated().scheduleTask(in: Self.keepaliveInterval) {
            guard case .ready(let current) = self.state, current === handler, handler.isUsable else { return }
            if handler.heardFromServer {
                handler.heardFromServer = false
            } else if handler.openStreams > 0 {
                self.checkLiveness(of: handler)
            }
            self.keepAlive(handler)
        }
    }

    private func connect() {
        state = .connecting
        connectionsOpened += 1
        let endpoint = endpoints[nextEndpoint % endpoints.count]
        let maximumMessageSize = maximumMessageSize
        let tls = tls
        let firstStreamID = firstStreamID
        let retirementStreamID = retirementStreamID
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = GRPCStreamsHandler(
                        authority: endpoint.description,
                        tls: tls != nil,
                        maximumMessageSize: maximumMessageSize,
                        firstStreamID: firstStreamID,
                        retirementStreamID: retirementStreamID,
                        onUnusable: { handler in self?.connectionUnusable(handler) }
                    )
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        try pipeline.addHandler(
                            NIOSSLClientHandler(
                                context: tls.context, serverHostname: tls.serverName(for: endpoint.host)))
                    }
                    try pipeline.addHandler(
                        NIOHTTP2Handler(
                            mode: .client, connectionConfiguration: GRPCStreamsHandler.connectionConfiguration()))
                    try pipeline.addHandler(handler)
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard case .connecting = self.state,
                        let handler = try? channel.pipeline.syncOperations.handler(type: GRPCStreamsHandler.self),
                        handler.isUsable
                    else {
                        channel.close(promise: nil)
                        self.connectFailed(endpoint, "the connection closed at once")
                        return
                    }
                    handler.whenActive {
                        guard case .connecting = self.state, handler.isUsable else {
                            channel.close(promise: nil)
                            self.connectFailed(endpoint, "the connection closed at once")
                            return
                        }
                        self.failuresInRow = 0
                        self.state = .ready(handler)
                        self.keepAlive(handler)
                        let ready = self.waiters
                        self.waiters.removeAll()
                        for waiter in ready { waiter.connectionReady(.success(handler)) }
                    }
                case .failure(let error):
                    self.connectFailed(endpoint, ConnectFailure.describe(error))
                }
            }
    }

    private func connectFailed(_ endpoint: Endpoint, _ reason: String) {
        lastFailure = "\(endpoint.description): \(reason)"
        guard case .connecting = state else { return }
        nextEndpoint += 1
        failuresInRow += 1
        if waiters.isEmpty {
            state = .idle
            return
        }
        guard failuresInRow.isMultiple(of: endpoints.count) else {
            connect()
            return
        }
        state = .backingOff
        let delay = Self.backoff(afterRounds: failuresInRow / endpoints.count).jittered()
        logger.debug("no etcd member reachable; retrying", metadata: ["last": "\(lastFailure)", "in": "\(delay)"])
        eventLoop.scheduleTask(in: TimeAmount(delay)) {
            guard case .backingOff = self.state else { return }
            if self.waiters.isEmpty {
                self.state = .idle
            } else {
                self.connect()
            }
        }
    }

    /// The wait after `rounds` whole rounds of refused connections, before jitter: 50 ms, growing
    /// by 1.6× a round to 1 s.
    static func backoff(afterRounds rounds: Int) -> Duration {
        var base = Duration.milliseconds(50)
        for _ in 1..<max(rounds, 1) where base < .seconds(1) { base = base * 1.6 }
        return min(base, .seconds(1))
    }

    private func connectionUnusable(_ handler: GRPCStreamsHandler) {
        guard case .ready(let current) = state, current === handler else { return }
        // The next connection goes to the next member: this one just failed or is leaving.
        nextEndpoint += 1
        state = .idle
        if !waiters.isEmpty { connect() }
    }
}

extension EtcdTransport {
    /// Between a long-lived stream (the `noun` stream) ending with `failure` (nil: it ended
    /// normally) and its reopening: none when its connection was draining (GOAWAY, stream ids
    /// running out), `delay` ±20% otherwise. The failure is logged.
    func pauseBeforeReopening(_ noun: String, after failure: (any Error)?, delay: Duration, logger: Logger) async {
        if let draining = failure as? GRPCCallError, draining.kind == .connectionDraining {
            logger.debug("\(noun) stream moving off a draining connection", metadata: ["error": "\(draining)"])
            return
        }
        if let failure {
            logger.info("\(noun) stream failed; reopening", metadata: ["error": "\(failure)"])
        }
        try? await Task.sleep(for: delay.jittered())
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self = .nanoseconds(nanoseconds.overflow ? Int64.max : nanoseconds.partialValue &+ attoseconds / 1_000_000_000)
    }
}

/// One unary call in flight. Lives on the event loop; completes its continuation exactly once.
///
/// A call the member provably never processed (its stream refused, or above the last stream id of
/// a GOAWAY) is sent once more, on the same connection if it is still usable and otherwise on the
/// next member's, within the call's original deadline — as gRPC's transparent retry does. So is a
/// read-only call whose connection broke under it, and, 100 ms later, a call etcd refused as "too
/// many requests" (it refuses those before proposing them). Every other failure reaches the
/// caller: a write whose connection broke may have taken effect.
final class UnaryCall<Response: SwiftProtobuf.Message>: GRPCStreamObserver, ConnectionWaiter, @unchecked Sendable {
    private let transport: EtcdTransport
    private let path: String
    private let message: ByteBuffer
    private let metadata: [(String, String)]
    private let timeout: Duration
    private let readOnly: Bool
    private var continuation: UnsafeContinuation<Response, any Error>?
    private var timer: Scheduled<Void>?
    private var stream: (handler: GRPCStreamsHandler, id: GRPCStreamID)?
    private var response: ByteBuffer?
    private var cancelled = false
    private var started = false
    private var deadline = NIODeadline.distantFuture
    private var retried = false

    init(
        transport: EtcdTransport, path: String, message: ByteBuffer, metadata: [(String, String)], timeout: Duration,
        readOnly: Bool
    ) {
        self.transport = transport
        self.path = path
        self.message = message
        self.metadata = metadata
        self.timeout = timeout
        self.readOnly = readOnly
    }

    func start(_ continuation: UnsafeContinuation<Response, any Error>) {
        self.continuation = continuation
        started = true
        if cancelled {
            complete(.failure(CancellationError()))
            return
        }
        deadline = .now() + TimeAmount(timeout)
        timer = transport.eventLoop.scheduleTask(deadline: deadline) { self.timedOut() }
        transport.whenReady(self)
    }

    func connectionReady(_ result: Result<GRPCStreamsHandler, GRPCCallError>) {
        guard continuation != nil else { return }
        // The server is told the time left (on a second attempt, less than the whole timeout).
        let left = Duration.nanoseconds(max((deadline - .now()).nanoseconds, 1_000_000))
        let opened = result.flatMap { handler in
            handler.open(path: path, metadata: metadata, timeout: left, observer: self).map { (handler, $0) }
        }
        switch opened {
        case .success(let (handler, id)):
            stream = (handler, id)
            handler.send(id, message, end: true, flush: true)
        case .failure(let error):
            if !retryIfSafe(error) { complete(.failure(error)) }
        }
    }

    /// Sends the call again once, if `error` proves the server never processed it, or the call
    /// reads only and its connection failed.
    private func retryIfSafe(_ error: GRPCCallError) -> Bool {
        let overloaded = error.code == .resourceExhausted && error.message.hasSuffix(Self.tooManyRequests)
        let safe = error.kind == .notProcessed || overloaded || (readOnly && error.code == .unavailable)
        guard safe, !retried, continuation != nil, !cancelled else { return false }
        retried = true
        response = nil
        stream = nil
        if overloaded {
            // etcd refuses a request before proposing it while its apply falls behind its commit
            // by over 5,000 entries: not processed, and worth a second try a moment later.
            transport.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(Self.overloadPause.jittered())) {
                guard self.continuation != nil, !self.cancelled else { return }
                self.transport.whenReady(self)
            }
        } else {
            transport.whenReady(self)
        }
        return true
    }

    /// etcd's `ErrTooManyRequests`, which it returns before proposing the request to raft.
    static var tooManyRequests: String { "etcdserver: too many requests" }
    static var overloadPause: Duration { .milliseconds(100) }

    func received(_ message: ByteBuffer) {
        guard response == nil else {
            abandon(GRPCCallError(.internal, "the server sent more than one response to a unary call"))
            return
        }
        response = message
    }

    func finished(_ error: GRPCCallError?) {
        stream = nil
        if let error {
            if retryIfSafe(error) { return }
            complete(.failure(error))
        } else if let response {
            complete(Result { try GRPCWire.decode(Response.self, from: response) })
        } else {
            complete(.failure(GRPCCallError(.internal, "the server answered a unary call without a message")))
        }
    }

    func cancel() {
        cancelled = true
        guard started else { return }
        abandon(CancellationError())
    }

    private func timedOut() {
        timer = nil
        if let stream {
            transport.checkLiveness(of: stream.handler)
            abandon(GRPCCallError(.deadlineExceeded, "no answer from \(stream.handler.authority) before the deadline"))
        } else {
            abandon(
                GRPCCallError(
                    .unavailable, "no etcd member could be reached before the deadline (\(transport.connectFailure))"))
        }
    }

    /// Ends the call from this side.
    private func abandon(_ error: any Error) {
        if let stream {
            self.stream = nil
            stream.handler.cancel(stream.id)
        } else {
            transport.removeWaiter(self)
        }
        complete(.failure(error))
    }

    private func complete(_ result: Result<Response, any Error>) {
        guard let continuation else { return }
        self.continuation = nil
        timer?.cancel()
        timer = nil
        continuation.resume(with: result)
    }
}

/// A bidirectional stream (etcd's Watch and LeaseKeepAlive). `responses` ends when the call does:
/// normally if the server ended it with OK, by throwing otherwise. `send` may be called from any
/// thread; messages go out in order.
///
/// Flow control follows the reader: the stream's window is topped up for a response only once
/// ``exchange(_:onResponse:)`` has handled it, so at most one stream window (4 MiB) of responses
/// waits here for a slow reader; beyond that the member holds them back.
final class GRPCBidiStream<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: GRPCStreamObserver,
    ConnectionWaiter, @unchecked Sendable
{
    /// Each response with its size on the wire (for the flow-control credit it frees once handled).
    let responses: AsyncThrowingStream<(Response, Int), any Error>
    private let output: AsyncThrowingStream<(Response, Int), any Error>.Continuation
    private let transport: EtcdTransport
    private let path: String
    private let metadata: [(String, String)]
    private var opening: UnsafeContinuation<Void, any Error>?
    private var stream: (handler: GRPCStreamsHandler, id: GRPCStreamID)?
    private var ended = false

    init(transport: EtcdTransport, path: String, metadata: [(String, String)]) {
        self.transport = transport
        self.path = path
        self.metadata = metadata
        (responses, output) = AsyncThrowingStream.makeStream()
        output.onTermination = { [weak self] _ in
            guard let self else { return }
            self.transport.eventLoop.execute { self.cancel() }
        }
    }

    func open(_ continuation: UnsafeContinuation<Void, any Error>) {
        if ended {
            continuation.resume(throwing: CancellationError())
            return
        }
        opening = continuation
        transport.whenReady(self)
    }

    func connectionReady(_ result: Result<GRPCStreamsHandler, GRPCCallError>) {
        guard let opening else { return }
        self.opening = nil
        let opened = result.flatMap { handler in
            handler.open(path: path, metadata: metadata, timeout: nil, creditOnConsume: true, observer: self).map {
                (handler, $0)
            }
        }
        switch opened {
        case .success(let (handler, id)):
            handler.flush()
            stream = (handler, id)
            opening.resume()
        case .failure(let error):
            ended = true
            opening.resume(throwing: error)
        }
    }

    func send(_ request: Request) {
        guard let message = try? GRPCWire.frame(request, allocator: transport.allocator) else { return }
        transport.execute { self.write(message) }
    }

    private func write(_ message: ByteBuffer) {
        guard let stream else { return }
        stream.handler.send(stream.id, message, end: false, flush: true)
    }

    func received(_ message: ByteBuffer) {
        do {
            output.yield(
                (try GRPCWire.decode(Response.self, from: message), GRPCWire.prefixLength + message.readableBytes))
        } catch {
            if let stream { stream.handler.cancel(stream.id) }
            finished(error as? GRPCCallError ?? GRPCCallError(.internal, "\(error)"))
        }
    }

    func finished(_ error: GRPCCallError?) {
        stream = nil
        ended = true
        output.finish(throwing: error)
    }

    /// The connection is draining: end this stream now (its owner reopens it on the next
    /// connection at once, resuming where it was) instead of holding the old connection open.
    func connectionDraining() {
        guard let stream else { return }
        self.stream = nil
        stream.handler.cancel(stream.id)
        ended = true
        output.finish(
            throwing: GRPCCallError(
                .unavailable, "the connection to \(stream.handler.authority) is draining", kind: .connectionDraining))
    }

    /// Sends each of `requests` and hands each response to `onResponse` until the call ends (normally,
    /// or by throwing), then ends the stream from this side; cancelling the task ends it too.
    func exchange(
        _ requests: AsyncStream<Request>,
        onResponse: (Response) async -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await request in requests { self.send(request) }
            }
            defer { group.cancelAll() }
            for try await (message, size) in responses {
                await onResponse(message)
                transport.execute { self.consumed(size) }
            }
            cancel()
        }
    }

    /// Frees the flow-control credit of a handled response (on the event loop). Credit of a
    /// stream that has ended, or moved, is not owed to anyone.
    private func consumed(_ size: Int) {
        guard let stream else { return }
        stream.handler.consumed(stream.id, bytes: size)
    }

    /// Ends the stream from this side (also when the reader stops reading).
    func cancel() {
        ended = true
        if let opening {
            self.opening = nil
            transport.removeWaiter(self)
            opening.resume(throwing: CancellationError())
        }
        if let stream {
            self.stream = nil
            stream.handler.cancel(stream.id)
        }
        output.finish()
    }
}
