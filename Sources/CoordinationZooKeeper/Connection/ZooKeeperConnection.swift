import CoordinationCore
import NIOCore
import NIOPosix

/// One ZooKeeper session on one TCP connection: handshake, pipelined requests, watch
/// notifications and the session's state. The building block of the (not yet written) store; it
/// does not reconnect yet, so a broken connection ends it.
final class ZooKeeperConnection: Sendable {
    let channel: any Channel
    let sessionID: Int64
    let sessionTimeout: Duration
    /// Watch notifications as the server sends them; finishes when the connection ends.
    let events: AsyncStream<WatcherEvent>
    /// The session's states as they change (alive first); finishes when the connection ends.
    let sessionStates: AsyncStream<SessionState>
    let endpoint: String

    private init(
        channel: any Channel, session: ZooKeeperConnectionStateMachine<ContinuousClock.Instant>.Session,
        events: AsyncStream<WatcherEvent>, states: AsyncStream<SessionState>, endpoint: String
    ) {
        self.channel = channel
        self.sessionID = session.id
        self.sessionTimeout = session.timeout
        self.events = events
        self.sessionStates = states
        self.endpoint = endpoint
    }

    /// Connects and establishes a new session with the requested timeout (the server may
    /// negotiate another; see ``sessionTimeout``).
    static func connect(
        host: String,
        port: Int,
        sessionTimeout: Duration,
        connectTimeout: Duration = .seconds(5),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ZooKeeperConnection {
        let endpoint = "\(host):\(port)"
        let eventLoop = group.next()
        let established = eventLoop.makePromise(
            of: ZooKeeperConnectionStateMachine<ContinuousClock.Instant>.Session.self)
        let (events, eventContinuation) = AsyncStream.makeStream(of: WatcherEvent.self)
        let (states, stateContinuation) = AsyncStream.makeStream(of: SessionState.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(
                .milliseconds(
                    connectTimeout.components.seconds * 1000 + connectTimeout.components.attoseconds
                        / 1_000_000_000_000_000)
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ZooKeeperChannelHandler(
                            sessionTimeout: sessionTimeout,
                            established: established,
                            events: eventContinuation,
                            states: stateContinuation
                        )
                    )
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            established.fail(error)
            throw CoordinationError(
                .connectionFailed, "could not connect to ZooKeeper", backend: "zookeeper", endpoint: endpoint,
                underlying: error)
        }
        do {
            let session = try await established.futureResult.get()
            return ZooKeeperConnection(
                channel: channel, session: session, events: events, states: states, endpoint: endpoint)
        } catch {
            try? await channel.close()
            throw Self.attributed(error, endpoint: endpoint)
        }
    }

    /// Sends one request and waits for its reply. Server errors arrive as ``CoordinationError``s
    /// whose code classifies the ZooKeeper error (noNode → keyNotFound, badVersion → revisionMismatch…).
    func send(_ request: ZooKeeperRequest) async throws -> ZooKeeperResponse {
        let promise = channel.eventLoop.makePromise(of: ZooKeeperResponse.self)
        channel.writeAndFlush(ZooKeeperChannelHandler.Command.request(request, promise), promise: nil)
        do {
            return try await promise.futureResult.get()
        } catch {
            throw Self.attributed(error, endpoint: endpoint)
        }
    }

    /// Ends the session (CloseSession), so its ephemeral nodes go at once, and the connection.
    func close() async {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(ZooKeeperChannelHandler.Command.close(promise), promise: nil)
        try? await promise.futureResult.get()
        try? await channel.close()
    }

    private static func attributed(_ error: any Error, endpoint: String) -> CoordinationError {
        if let error = error as? CoordinationError { return error.attributed(backend: "zookeeper", endpoint: endpoint) }
        if let error = error as? ChannelError, error == .ioOnClosedChannel || error == .alreadyClosed {
            return CoordinationError(
                .connectionFailed, "the connection to ZooKeeper is closed", backend: "zookeeper", endpoint: endpoint,
                underlying: error)
        }
        return CoordinationError(
            .connectionFailed, "ZooKeeper connection failed", backend: "zookeeper", endpoint: endpoint,
            underlying: error)
    }
}
