import CoordinationCore
import NIOCore

/// The thin I/O side of one ZooKeeper connection: it splits bytes into frames, feeds them and the
/// clock to ``ZooKeeperConnectionStateMachine`` and carries out its actions. Everything runs on the
/// channel's event loop. One TCP connection only: resuming the session on another connection
/// (the state machine's `reconnect` action) is not wired up yet.
final class ZooKeeperChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Command
    typealias OutboundOut = ByteBuffer

    enum Command {
        case request(ZooKeeperRequest, EventLoopPromise<ZooKeeperResponse>)
        case close(EventLoopPromise<Void>)
    }

    private var machine: ZooKeeperConnectionStateMachine<ContinuousClock.Instant>
    private var decoder = ZooKeeperFrameDecoder()
    private var promises: [Int32: EventLoopPromise<ZooKeeperResponse>] = [:]
    private var closePromises: [EventLoopPromise<Void>] = []
    private let established: EventLoopPromise<ZooKeeperConnectionStateMachine<ContinuousClock.Instant>.Session>
    private let events: AsyncStream<WatcherEvent>.Continuation
    private let states: AsyncStream<SessionState>.Continuation
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var handshakeStarted = false

    init(
        sessionTimeout: Duration,
        established: EventLoopPromise<ZooKeeperConnectionStateMachine<ContinuousClock.Instant>.Session>,
        events: AsyncStream<WatcherEvent>.Continuation,
        states: AsyncStream<SessionState>.Continuation
    ) {
        machine = ZooKeeperConnectionStateMachine(configuration: .init(requestedTimeout: sessionTimeout))
        self.established = established
        self.events = events
        self.states = states
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        _ = machine.start()
        if context.channel.isActive { startHandshake() }
    }

    func channelActive(context: ChannelHandlerContext) {
        startHandshake()
        context.fireChannelActive()
    }

    /// Added to an active channel or told it became active: either way, handshake once.
    private func startHandshake() {
        guard !handshakeStarted else { return }
        handshakeStarted = true
        run(machine.connectionEstablished(now: .now))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data))
        do {
            while let frame = try decoder.nextFrame() {
                run(machine.received(frame, now: .now))
            }
        } catch {
            fail(
                CoordinationError(.protocolError, "ZooKeeper sent a bad frame (\(error.reason))", backend: "zookeeper"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        run(machine.connectionClosed(now: .now))
        // This handler serves one connection: whatever the state machine still awaits ends here.
        fail(CoordinationError(.connectionFailed, "the connection to ZooKeeper closed", backend: "zookeeper"))
        for promise in closePromises { promise.succeed(()) }
        closePromises.removeAll()
        events.finish()
        states.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .request(let request, let responsePromise):
            let (xid, actions) = machine.send(request, now: .now)
            promises[xid] = responsePromise
            run(actions)
        case .close(let closePromise):
            closePromises.append(closePromise)
            let actions = machine.close(now: .now)
            if actions.isEmpty { context.close(promise: nil) }
            run(actions)
        }
        promise?.succeed(())
    }

    private func run(_ actions: [ZooKeeperConnectionStateMachine<ContinuousClock.Instant>.Action]) {
        guard let context else { return }
        for action in actions {
            switch action {
            case .connect, .reconnect:
                break  // one connection per handler for now (see the type's comment)
            case .write(let frame):
                context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
            case .closeConnection:
                context.close(promise: nil)
            case .succeed(let xid, let response, _):
                promises.removeValue(forKey: xid)?.succeed(response)
            case .fail(let xid, let error):
                promises.removeValue(forKey: xid)?.fail(error)
            case .watchEvent(let event):
                events.yield(event)
            case .sessionState(let state):
                states.yield(state)
                if state == .alive, let session = machine.session { established.succeed(session) }
            case .protocolError(let error):
                fail(error)
            }
        }
        schedule()
    }

    private func fail(_ error: CoordinationError) {
        established.fail(error)
        let pending = promises
        promises.removeAll()
        for promise in pending.values { promise.fail(error) }
    }

    /// Wakes up at the state machine's next deadline (pings, suspension, expiry).
    private func schedule() {
        timer?.cancel()
        guard let context, let deadline = machine.nextDeadline() else { return }
        let delay = ContinuousClock.now.duration(to: deadline)
        let (seconds, attoseconds) = delay.components
        let nanoseconds = max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            let handler = bound.value
            handler.run(handler.machine.tick(now: .now))
        }
    }
}
