@_spi(Backend) import CoordinationCore
import NIOCore

/// The pure logic of one ZooKeeper session over a sequence of TCP connections: handshake, xids,
/// matching replies to requests, pings, the session's alive / suspended / expired state, and what
/// becomes of requests in flight when a connection breaks. No I/O and no clock of its own: the
/// connection handler feeds it events with the current instant and carries out the actions it
/// returns, so every rule below is unit-tested without a server.
///
/// Timing follows ZooKeeper's own client (`ClientCnxn`) and the core's `RenewalRule`, applied to
/// what a reply guarantees: the negotiated timeout less the follower bound. A ping goes out after a
/// third of that without sending, and a connection is given up after two thirds without hearing
/// from the server. The safety rule (docs/architecture.md, 3.5 and 3.8) is kept from *send* times:
/// the quorum renews a session when a packet reaches it, so a reply to a packet sent at `s` proves
/// the session lives until at least `s + timeout − followerBound` (the bound covers a follower cut
/// off from the quorum that still answers). The session is reported expired at that instant at the
/// latest, before the server can give its ephemeral nodes to anyone else.
struct ZooKeeperConnectionStateMachine<Instant: InstantProtocol> where Instant.Duration == Duration {
    struct Configuration {
        /// The session timeout asked for; the server clamps it to [2, 20] ticks by default.
        var requestedTimeout: Duration
        /// How long to wait before connecting again after a connection broke.
        var reconnectDelay: Duration = .milliseconds(100)
        /// How long a member cut off from the quorum may go on answering (the ensemble's
        /// `syncLimit × tickTime`): a reply guarantees the session only until its request's send
        /// time plus the timeout *less this bound*.
        var followerBound: Duration = .zero
        /// Identities to add after every handshake (`addauth`), in order, before any request:
        /// each is an AuthPacket. A failure ends the session (`authenticationFailed`).
        var authentication: [(scheme: String, credential: [UInt8])] = []
    }

    /// What identifies a session across connections.
    struct Session: Equatable {
        var id: Int64
        var password: [UInt8]
        /// The timeout the server granted.
        var timeout: Duration
    }

    enum State {
        /// Not started yet.
        case initial
        /// A TCP connection is being opened (for a new session, or to resume `session`).
        case connecting(session: Session?)
        /// The ConnectRequest was sent at `sentAt`; waiting for the ConnectResponse.
        case handshaking(session: Session?, sentAt: Instant)
        case connected
        /// The connection broke; the session may still be valid on the server.
        case disconnected(session: Session)
        /// A CloseSession request is in flight.
        case closing
        /// Terminal: the server (or the safety rule) ended the session.
        case expired
        /// Terminal: closed by its owner.
        case closed
    }

    /// What the caller must do. Several can follow from one event; carry them out in order.
    enum Action: Equatable {
        /// Open a TCP connection to the next server.
        case connect
        /// Open a TCP connection after the delay.
        case reconnect(after: Duration)
        /// Write this frame (length prefix included).
        case write(ByteBuffer)
        /// Close the TCP connection (the state machine has already given up on it).
        case closeConnection
        /// Complete the request with this xid.
        case succeed(xid: Int32, ZooKeeperResponse, zxid: Int64)
        /// Fail the request with this xid.
        case fail(xid: Int32, CoordinationError)
        /// Deliver a watch notification.
        case watchEvent(WatcherEvent)
        /// The session's state as the owner must see it changed.
        case sessionState(SessionState)
        /// The connection is unusable because the server sent something this client cannot read.
        case protocolError(CoordinationError)
    }

    private struct Pending {
        var xid: Int32
        var opCode: OpCode
        var sentAt: Instant
    }

    let configuration: Configuration
    private(set) var state: State = .initial
    private(set) var session: Session?
    /// The highest zxid any reply carried: sent on reconnect so a server that is behind refuses us.
    private(set) var lastZxidSeen: Int64 = 0
    private(set) var reportedState: SessionState?
    private var nextXid: Int32 = 1
    /// Requests in flight in send order; ZooKeeper answers each connection's requests in order.
    private var pending: [Pending] = []
    private var lastSend: Instant?
    private var lastReceive: Instant?
    /// The server holds the session at least until then (`nil` before the handshake and after the
    /// end).
    private(set) var guaranteedUntil: Instant?
    /// Set when the server refused an identity; every later call fails with it.
    private(set) var authenticationFailure: CoordinationError?

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Timing rules

    // The core's renewal rule (RenewalRule), applied to what a reply guarantees: the session
    // timeout less the follower bound.

    /// What one reply guarantees of a session with `timeout`.
    func guaranteed(_ timeout: Duration) -> Duration { timeout - configuration.followerBound }
    /// Ping after this long without sending.
    func pingInterval(_ timeout: Duration) -> Duration { RenewalRule.interval(guaranteed(timeout)) }
    /// Give the connection up after this long without hearing from the server.
    func readTimeout(_ timeout: Duration) -> Duration { guaranteed(timeout) * 2 / 3 }
    /// Report `suspended` once less than this much of the session is still guaranteed.
    func suspendMargin(_ timeout: Duration) -> Duration { RenewalRule.suspendMargin(guaranteed(timeout)) }

    // MARK: Events

    mutating func start() -> [Action] {
        guard case .initial = state else { return [] }
        state = .connecting(session: nil)
        return [.connect]
    }

    /// The TCP connection is open: send the ConnectRequest (resuming the session if there is one).
    mutating func connectionEstablished(now: Instant) -> [Action] {
        guard case .connecting(let session) = state else { return [.closeConnection] }
        let request = ConnectRequest(
            lastZxidSeen: lastZxidSeen,
            timeoutMilliseconds: Self.milliseconds(session?.timeout ?? configuration.requestedTimeout),
            sessionID: session?.id ?? 0,
            password: session?.password ?? [UInt8](repeating: 0, count: 16)
        )
        var buffer = ByteBuffer()
        ZooKeeperFrameEncoder.frame(into: &buffer) { request.encode(into: &$0) }
        state = .handshaking(session: session, sentAt: now)
        lastSend = now
        return [.write(buffer)]
    }

    /// A TCP connection could not be opened or broke. Requests in flight fail with
    /// `connectionFailed` (their outcome is unknown: a write may or may not have been applied).
    mutating func connectionClosed(now: Instant) -> [Action] {
        var actions = failPending(
            CoordinationError(
                .connectionFailed, "the connection to ZooKeeper broke before the reply arrived", backend: "zookeeper"))
        switch state {
        case .initial, .expired, .closed:
            return actions
        case .closing:
            state = .closed
            return actions + report(.closed)
        case .connecting(let session), .handshaking(let session, _):
            if let session {
                state = .disconnected(session: session)
            } else {
                state = .connecting(session: nil)
                return actions + [.reconnect(after: configuration.reconnectDelay)]
            }
        case .connected:
            guard let session else { return actions }
            state = .disconnected(session: session)
        case .disconnected:
            break
        }
        actions += report(.suspended)
        actions += tick(now: now)
        if case .disconnected(let session) = state {
            state = .connecting(session: session)
            actions.append(.reconnect(after: configuration.reconnectDelay))
        }
        return actions
    }

    /// Assigns an xid and encodes a request. A request made while not connected fails at once
    /// (ZooKeeper's client queues it; failing lets the caller decide, and keeps no hidden queue).
    mutating func send(_ request: ZooKeeperRequest, now: Instant) -> (xid: Int32, actions: [Action]) {
        let xid = allocateXid()
        guard case .connected = state else {
            let error: CoordinationError =
                switch state {
                case .expired:
                    CoordinationError(.sessionExpired, "the ZooKeeper session has expired", backend: "zookeeper")
                case .closed where authenticationFailure != nil:
                    authenticationFailure!
                case .closed, .closing:
                    CoordinationError(.sessionClosed, "the ZooKeeper session was closed", backend: "zookeeper")
                default: CoordinationError(.connectionFailed, "not connected to ZooKeeper", backend: "zookeeper")
                }
            return (xid, [.fail(xid: xid, error)])
        }
        return (xid, [write(request, xid: xid, now: now)])
    }

    /// Sends CloseSession; the session is closed when the reply arrives or the connection ends.
    mutating func close(now: Instant) -> [Action] {
        switch state {
        case .connected:
            let xid = allocateXid()
            let frame = write(.closeSession, xid: xid, now: now)
            state = .closing
            return [frame]
        case .expired, .closed, .closing:
            return []
        case .initial, .connecting, .handshaking, .disconnected:
            state = .closed
            let actions = failPending(
                CoordinationError(.sessionClosed, "the ZooKeeper session was closed", backend: "zookeeper"))
            return actions + report(.closed) + [.closeConnection]
        }
    }

    /// One frame from the server.
    mutating func received(_ frame: ByteBuffer, now: Instant) -> [Action] {
        var frame = frame
        lastReceive = now
        do throws(JuteDecodingError) {
            if case .handshaking(let previous, let sentAt) = state {
                return handshakeCompleted(try ConnectResponse(from: &frame), previous: previous, sentAt: sentAt)
            }
            let header = try ReplyHeader(from: &frame)
            if header.zxid > lastZxidSeen { lastZxidSeen = header.zxid }
            if header.xid == ReservedXid.notification {
                let event = try WatcherEvent(from: &frame)
                if event.type == .none, event.state == .expired { return sessionExpired() }
                return [.watchEvent(event)]
            }
            guard let first = pending.first else {
                return violation("a reply with xid \(header.xid) to no request")
            }
            guard first.xid == header.xid else {
                return violation("xid out of order: expected \(first.xid), got \(header.xid)")
            }
            pending.removeFirst()
            var actions = renewed(sentAt: first.sentAt, now: now)
            let code = ZooKeeperErrorCode(rawValue: header.err)
            if code == .sessionExpired { return actions + sessionExpired() }
            if first.opCode == .closeSession {
                state = .closed
                return actions + report(.closed) + [.closeConnection]
            }
            if first.xid == ReservedXid.ping { return actions }
            if first.xid == ReservedXid.auth {
                return code == .ok ? actions : actions + authenticationFailed(code)
            }
            if code != .ok {
                actions.append(.fail(xid: first.xid, Self.error(for: code, opCode: first.opCode, zxid: header.zxid)))
            } else {
                actions.append(
                    .succeed(
                        xid: first.xid, try ZooKeeperResponse.decode(for: first.opCode, from: &frame), zxid: header.zxid
                    ))
            }
            return actions
        } catch {
            return violation("an unreadable reply (\(error.reason))")
        }
    }

    /// Decides what time alone makes due: a ping, suspension, expiry, giving up a silent connection.
    mutating func tick(now: Instant) -> [Action] {
        if case .handshaking(_, let sentAt) = state, now >= sentAt.advanced(by: configuration.requestedTimeout) {
            // No ConnectResponse within the session timeout: this server is not answering.
            return [.closeConnection] + connectionClosed(now: now)
        }
        guard let session else { return [] }
        switch state {
        case .connected, .disconnected, .connecting, .handshaking, .closing: break
        case .initial, .expired, .closed: return []
        }
        if let guaranteedUntil, now >= guaranteedUntil { return sessionExpired() }
        var actions: [Action] = []
        if let guaranteedUntil, reportedState == .alive,
            now >= guaranteedUntil.advanced(by: .zero - suspendMargin(session.timeout))
        {
            actions += report(.suspended)
        }
        guard case .connected = state else { return actions }
        if let lastReceive, now >= lastReceive.advanced(by: readTimeout(session.timeout)) {
            // The server went silent: give this connection up and resume the session elsewhere.
            return actions + [.closeConnection] + connectionClosed(now: now)
        }
        if let lastSend, now >= lastSend.advanced(by: pingInterval(session.timeout)) {
            actions.append(write(.ping, xid: ReservedXid.ping, now: now))
        }
        return actions
    }

    /// The next instant `tick` can have something to do.
    func nextDeadline() -> Instant? {
        let handshakeDeadline: Instant? =
            if case .handshaking(_, let sentAt) = state { sentAt.advanced(by: configuration.requestedTimeout) } else {
                nil
            }
        guard let session else { return handshakeDeadline }
        var candidates: [Instant] = handshakeDeadline.map { [$0] } ?? []
        switch state {
        case .initial, .expired, .closed: return nil
        case .connected:
            if let lastSend { candidates.append(lastSend.advanced(by: pingInterval(session.timeout))) }
            if let lastReceive { candidates.append(lastReceive.advanced(by: readTimeout(session.timeout))) }
        default: break
        }
        if let guaranteedUntil {
            candidates.append(guaranteedUntil)
            if reportedState == .alive {
                candidates.append(guaranteedUntil.advanced(by: .zero - suspendMargin(session.timeout)))
            }
        }
        return candidates.min()
    }

    // MARK: Helpers

    private mutating func handshakeCompleted(_ response: ConnectResponse, previous: Session?, sentAt: Instant)
        -> [Action]
    {
        guard response.timeoutMilliseconds > 0 else {
            // The server no longer knows the session we asked to resume.
            return sessionExpired()
        }
        if let previous, previous.id != response.sessionID {
            return violation("the server resumed session \(response.sessionID) instead of \(previous.id)")
        }
        let session = Session(
            id: response.sessionID, password: response.password,
            timeout: .milliseconds(Int64(response.timeoutMilliseconds)))
        self.session = session
        state = .connected
        let candidate = sentAt.advanced(by: guaranteed(session.timeout))
        if guaranteedUntil.map({ candidate > $0 }) ?? true { guaranteedUntil = candidate }
        // The identities go first: the server handles an AuthPacket as it reads it, so every
        // request written after it (including those the owner resumes on `alive`) runs with them.
        let authentication = configuration.authentication.map {
            write(.auth(scheme: $0.scheme, credential: $0.credential), xid: ReservedXid.auth, now: sentAt)
        }
        return authentication + report(.alive)
    }

    /// The server refused an identity: the session is of no use (ZooKeeper's client goes to
    /// AUTH_FAILED for good). Calls in flight and later ones fail with `authenticationFailed`.
    private mutating func authenticationFailed(_ code: ZooKeeperErrorCode) -> [Action] {
        let error = CoordinationError(
            .authenticationFailed, "ZooKeeper refused the credentials (\(code))", backend: "zookeeper")
        authenticationFailure = error
        state = .closed
        guaranteedUntil = nil
        return failPending(error) + report(.closed) + [.closeConnection]
    }

    /// A reply to a packet sent at `sentAt` extends the guarantee; it ends a suspension only when
    /// the guarantee is back above the suspend margin (no alive/suspended flapping).
    private mutating func renewed(sentAt: Instant, now: Instant) -> [Action] {
        guard let session else { return [] }
        let candidate = sentAt.advanced(by: guaranteed(session.timeout))
        if guaranteedUntil.map({ candidate > $0 }) ?? true { guaranteedUntil = candidate }
        if reportedState == .suspended, case .connected = state, let guaranteedUntil,
            guaranteedUntil > now.advanced(by: suspendMargin(session.timeout))
        {
            return report(.alive)
        }
        return []
    }

    private mutating func write(_ request: ZooKeeperRequest, xid: Int32, now: Instant) -> Action {
        var buffer = ByteBuffer()
        ZooKeeperFrameEncoder.frame(into: &buffer) { request.encode(xid: xid, into: &$0) }
        pending.append(Pending(xid: xid, opCode: request.opCode, sentAt: now))
        lastSend = now
        return .write(buffer)
    }

    private mutating func allocateXid() -> Int32 {
        let xid = nextXid
        // Stay positive: negative xids are reserved for pings, notifications and friends.
        nextXid = nextXid == .max ? 1 : nextXid + 1
        return xid
    }

    private mutating func failPending(_ error: CoordinationError) -> [Action] {
        let failed = pending.filter { $0.xid > 0 }.map { Action.fail(xid: $0.xid, error) }
        pending.removeAll()
        return failed
    }

    private mutating func sessionExpired() -> [Action] {
        state = .expired
        guaranteedUntil = nil
        let actions = failPending(
            CoordinationError(.sessionExpired, "the ZooKeeper session has expired", backend: "zookeeper"))
        return actions + report(.expired) + [.closeConnection]
    }

    private mutating func violation(_ message: String) -> [Action] {
        let error = CoordinationError(.protocolError, "ZooKeeper sent \(message)", backend: "zookeeper")
        return [.protocolError(error), .closeConnection]
    }

    private mutating func report(_ newState: SessionState) -> [Action] {
        guard reportedState != newState else { return [] }
        if reportedState == .expired || reportedState == .closed { return [] }
        if newState == .suspended, reportedState == nil { return [] }
        reportedState = newState
        return [.sessionState(newState)]
    }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let value = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: value)
    }

    static func error(for code: ZooKeeperErrorCode, opCode: OpCode, zxid: Int64) -> CoordinationError {
        CoordinationError(
            code.coordinationCode, "ZooKeeper answered \(code) to \(opCode)", backend: "zookeeper",
            underlying: ZooKeeperReplyError(code: code, zxid: zxid))
    }
}
