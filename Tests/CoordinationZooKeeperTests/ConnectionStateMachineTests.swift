import CoordinationCore
import NIOCore
import Testing

@testable import CoordinationZooKeeper

/// The connection state machine driven by hand: instants are advanced explicitly, frames are built
/// with the codec, so each rule is checked without a server or a real clock.
@Suite("ZooKeeper connection state machine")
struct ConnectionStateMachineTests {
    typealias Machine = ZooKeeperConnectionStateMachine<ContinuousClock.Instant>
    typealias Action = Machine.Action

    let t0 = ContinuousClock.now
    let password: [UInt8] = Array(1...16)

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0.advanced(by: .milliseconds(milliseconds)) }

    func frame(_ body: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var buffer = ByteBuffer()
        body(&buffer)
        return buffer
    }

    func handshake(timeout: Int32 = 3000, sessionID: Int64 = 0x42) -> ByteBuffer {
        frame {
            ConnectResponse(timeoutMilliseconds: timeout, sessionID: sessionID, password: password).encode(into: &$0)
        }
    }

    func reply(
        xid: Int32, zxid: Int64 = 10, err: ZooKeeperErrorCode = .ok, _ body: (inout ByteBuffer) -> Void = { _ in }
    ) -> ByteBuffer {
        frame {
            ReplyHeader(xid: xid, zxid: zxid, err: err.rawValue).encode(into: &$0)
            body(&$0)
        }
    }

    /// A machine connected at t0 with a 3 s session.
    func connected() -> Machine {
        var machine = Machine(configuration: .init(requestedTimeout: .seconds(3)))
        _ = machine.start()
        _ = machine.connectionEstablished(now: t0)
        _ = machine.received(handshake(), now: t0)
        return machine
    }

    func decodeRequest(_ action: Action?) throws -> RequestHeader {
        guard case .write(var buffer) = action else { throw CoordinationError(.protocolError, "no write") }
        _ = buffer.readInteger(as: Int32.self)
        return try RequestHeader(from: &buffer)
    }

    @Test("handshake: a new session sends id 0 and the requested timeout, then is alive with the negotiated one")
    func handshakeNewSession() throws {
        var machine = Machine(configuration: .init(requestedTimeout: .seconds(3)))
        #expect(machine.start() == [.connect])
        let actions = machine.connectionEstablished(now: t0)
        guard case .write(var buffer) = actions.first else {
            Issue.record("no ConnectRequest")
            return
        }
        #expect(buffer.readInteger(as: Int32.self) == 45)
        let request = try ConnectRequest(from: &buffer)
        #expect(request.sessionID == 0)
        #expect(request.timeoutMilliseconds == 3000)
        #expect(machine.received(handshake(timeout: 4000), now: at(5)) == [.sessionState(.alive)])
        #expect(machine.session == .init(id: 0x42, password: password, timeout: .seconds(4)))
    }

    @Test("authentication: after every handshake the AuthPackets go out before alive; their replies are consumed")
    func authenticationAfterHandshake() throws {
        let credential = Array("alice:secret".utf8)
        var machine = Machine(
            configuration: .init(requestedTimeout: .seconds(3), authentication: [("digest", credential)]))
        _ = machine.start()
        _ = machine.connectionEstablished(now: t0)
        let actions = machine.received(handshake(), now: at(1))
        #expect(actions.count == 2)
        #expect(actions.last == .sessionState(.alive))
        guard case .write(var buffer) = actions.first else {
            Issue.record("no AuthPacket before alive: \(actions)")
            return
        }
        _ = buffer.readInteger(as: Int32.self)
        #expect(try RequestHeader(from: &buffer) == RequestHeader(xid: ReservedXid.auth, type: 100))
        #expect(try buffer.readJuteInt() == 0)
        #expect(try buffer.readJuteString() == "digest")
        #expect(try buffer.readJuteBuffer() == credential)
        // A request after it is answered after the auth reply, which yields nothing of its own.
        let read = machine.send(.exists(path: "/a", watch: false), now: at(2))
        #expect(machine.received(reply(xid: ReservedXid.auth), now: at(3)).isEmpty)
        #expect(machine.received(reply(xid: read.xid, err: .noNode), now: at(3)).count == 1)
        // The identity is added again when the session resumes on a new connection.
        _ = machine.connectionClosed(now: at(4))
        _ = machine.connectionEstablished(now: at(5))
        let resumed = machine.received(handshake(), now: at(6))
        #expect(try decodeRequest(resumed.first) == RequestHeader(xid: ReservedXid.auth, type: 100))
    }

    @Test("authentication refused (AuthFailed): calls in flight and later ones fail with authenticationFailed")
    func authenticationFailed() throws {
        var machine = Machine(
            configuration: .init(requestedTimeout: .seconds(3), authentication: [("nosuchscheme", [1])]))
        _ = machine.start()
        _ = machine.connectionEstablished(now: t0)
        _ = machine.received(handshake(), now: at(1))
        let read = machine.send(.exists(path: "/a", watch: false), now: at(2))
        let actions = machine.received(reply(xid: ReservedXid.auth, err: .authFailed), now: at(3))
        guard case .fail(read.xid, let error) = actions.first else {
            Issue.record("the pending read did not fail: \(actions)")
            return
        }
        #expect(error.code == .authenticationFailed)
        #expect(actions.contains(.sessionState(.closed)))
        #expect(actions.last == .closeConnection)
        let later = machine.send(.exists(path: "/b", watch: false), now: at(4))
        guard case .fail(_, let laterError) = later.actions.first else {
            Issue.record("a later call did not fail")
            return
        }
        #expect(laterError.code == .authenticationFailed)
    }

    @Test("xids count up from 1; replies are matched in order and decoded by the request's op")
    func pipelinedRequests() throws {
        var machine = connected()
        let first = machine.send(.getData(path: "/a", watch: false), now: at(1))
        let second = machine.send(.delete(path: "/b", version: -1), now: at(1))
        #expect(first.xid == 1)
        #expect(second.xid == 2)
        #expect(try decodeRequest(second.actions.first) == RequestHeader(xid: 2, type: 2))

        let stat = Stat.zero
        let dataReply = reply(xid: 1, zxid: 11) {
            $0.writeJuteBuffer([5])
            stat.encode(into: &$0)
        }
        #expect(machine.received(dataReply, now: at(2)) == [.succeed(xid: 1, .data([5], stat), zxid: 11)])
        let failed = machine.received(reply(xid: 2, zxid: 12, err: .noNode), now: at(3))
        guard case .fail(2, let error) = failed.first else {
            Issue.record("expected a failure, got \(failed)")
            return
        }
        #expect(error.code == .keyNotFound)
        #expect(machine.lastZxidSeen == 12)
    }

    @Test("a reply out of order is a protocol error that closes the connection")
    func outOfOrder() {
        var machine = connected()
        _ = machine.send(.sync(path: "/"), now: at(1))
        _ = machine.send(.sync(path: "/"), now: at(1))
        let actions = machine.received(reply(xid: 2), now: at(2))
        guard case .protocolError(let error) = actions.first else {
            Issue.record("got \(actions)")
            return
        }
        #expect(error.code == .protocolError)
        #expect(actions.last == .closeConnection)
    }

    @Test("an unreadable reply body is a protocol error, not a crash")
    func garbage() {
        var machine = connected()
        _ = machine.send(.getData(path: "/a", watch: false), now: at(1))
        let actions = machine.received(reply(xid: 1) { $0.writeJuteInt(-7) }, now: at(2))
        guard case .protocolError = actions.first else {
            Issue.record("got \(actions)")
            return
        }
    }

    @Test("pings go out after a third of the negotiated timeout without sending; their replies complete nothing")
    func pings() throws {
        var machine = connected()  // 3 s session
        #expect(machine.nextDeadline() == at(1000))
        #expect(machine.tick(now: at(999)) == [])
        let actions = machine.tick(now: at(1000))
        #expect(try decodeRequest(actions.first) == RequestHeader(xid: -2, type: 11))
        #expect(machine.received(reply(xid: -2), now: at(1010)) == [])
        // Sending resets the ping timer.
        _ = machine.send(.sync(path: "/"), now: at(1500))
        #expect(machine.tick(now: at(2000)) == [])
    }

    @Test("a watcher event (xid -1) is delivered without touching requests in flight")
    func watchEvents() {
        var machine = connected()
        _ = machine.send(.sync(path: "/"), now: at(1))
        let event = WatcherEvent(type: .nodeDataChanged, state: .syncConnected, path: "/w")
        let notification = reply(xid: -1, zxid: -1) { event.encode(into: &$0) }
        #expect(machine.received(notification, now: at(2)) == [.watchEvent(event)])
        #expect(
            machine.received(reply(xid: 1) { $0.writeJuteString("/") }, now: at(3)) == [
                .succeed(xid: 1, .synced(path: "/"), zxid: 10)
            ])
    }

    @Test(
        "disconnect: requests in flight fail with connectionFailed, the session is suspended and resumed with its id and password"
    )
    func disconnectAndResume() throws {
        var machine = connected()
        let request = machine.send(.exists(path: "/a", watch: true), now: at(100))
        _ = machine.received(reply(xid: request.xid, zxid: 20) { Stat.zero.encode(into: &$0) }, now: at(110))
        let pending = machine.send(.setData(path: "/a", data: [1], version: 0), now: at(200))
        let actions = machine.connectionClosed(now: at(300))
        guard case .fail(pending.xid, let error) = actions.first else {
            Issue.record("got \(actions)")
            return
        }
        #expect(error.code == .connectionFailed)
        #expect(actions.contains(.sessionState(.suspended)))
        #expect(actions.last == .reconnect(after: .milliseconds(100)))

        // While disconnected, new requests fail at once.
        let refused = machine.send(.sync(path: "/"), now: at(350))
        guard case .fail(_, let refusal) = refused.actions.first else {
            Issue.record("not refused")
            return
        }
        #expect(refusal.code == .connectionFailed)

        let resume = machine.connectionEstablished(now: at(400))
        guard case .write(var buffer) = resume.first else {
            Issue.record("no ConnectRequest")
            return
        }
        _ = buffer.readInteger(as: Int32.self)
        let connect = try ConnectRequest(from: &buffer)
        #expect(connect.sessionID == 0x42)
        #expect(connect.password == password)
        #expect(connect.lastZxidSeen == 20)
        #expect(connect.timeoutMilliseconds == 3000)
        #expect(machine.received(handshake(), now: at(410)) == [.sessionState(.alive)])
    }

    @Test("safety rule: expired no later than the timeout after the last acknowledged send, even while reconnecting")
    func expiresFromSendTimes() {
        var machine = connected()  // handshake sent at t0: guaranteed until 3000
        let ping = machine.tick(now: at(1000))  // ping sent at 1000
        #expect(ping.count == 1)
        // The reply arrives late; the guarantee counts from the send time, not the arrival.
        _ = machine.received(reply(xid: -2), now: at(1400))
        #expect(machine.nextDeadline() == at(2000))  // the next ping
        _ = machine.connectionClosed(now: at(1500))
        #expect(machine.tick(now: at(2500)) == [])  // already reported suspended
        #expect(machine.nextDeadline() == at(4000))
        let expiry = machine.tick(now: at(4000))
        #expect(expiry == [.sessionState(.expired), .closeConnection])
        #expect(
            machine.send(.sync(path: "/"), now: at(4001)).actions.first.map { action in
                if case .fail(_, let error) = action { return error.code == .sessionExpired }
                return false
            } == true)
    }

    @Test("suspended once half the timeout passed without an acknowledged send; alive again after a timely reply")
    func suspendWithoutContact() {
        var machine = connected()
        _ = machine.tick(now: at(1000))  // ping, never answered
        #expect(machine.tick(now: at(1499)) == [])
        #expect(machine.tick(now: at(1500)) == [.sessionState(.suspended)])
        // The ping sent at 1000 is answered at 1600: guaranteed until 4000, more than half left.
        #expect(machine.received(reply(xid: -2), now: at(1600)) == [.sessionState(.alive)])
    }

    @Test(
        "a follower bound is taken off every reply's guarantee; pings, suspension and the read timeout follow what is left"
    )
    func followerBound() {
        // 3 s timeout, 1.2 s bound: each reply guarantees 1.8 s from its request's send time.
        var machine = Machine(configuration: .init(requestedTimeout: .seconds(3), followerBound: .milliseconds(1200)))
        _ = machine.start()
        _ = machine.connectionEstablished(now: t0)
        _ = machine.received(handshake(), now: t0)
        #expect(machine.guaranteedUntil == at(1800))
        // Pings every 0.6 s (a third of 1.8 s), not every second.
        #expect(machine.nextDeadline() == at(600))
        #expect(machine.tick(now: at(600)).count == 1)
        _ = machine.received(reply(xid: -2), now: at(650))
        #expect(machine.guaranteedUntil == at(2400))
        // The next ping goes unanswered: suspended once less than 0.9 s is left (at 1.5 s),
        // the connection given up 1.2 s after the last reply, expired at 2.4 s.
        _ = machine.tick(now: at(1200))
        #expect(machine.tick(now: at(1499)) == [])
        #expect(machine.tick(now: at(1500)) == [.sessionState(.suspended)])
        #expect(machine.tick(now: at(1850)).contains(.closeConnection))
        #expect(machine.tick(now: at(2400)).first == .sessionState(.expired))
    }

    @Test("a silent server loses the connection after two thirds of the timeout")
    func readTimeout() {
        var machine = connected()
        _ = machine.tick(now: at(1000))  // ping, unanswered
        let actions = machine.tick(now: at(2000))
        #expect(actions.first == .sessionState(.suspended) || actions.first == .closeConnection)
        #expect(actions.contains(.closeConnection))
        #expect(actions.last == .reconnect(after: .milliseconds(100)))
    }

    @Test("the server says expired: a ConnectResponse with timeout 0, error -112, or an Expired event")
    func serverSideExpiry() {
        var resumed = connected()
        _ = resumed.connectionClosed(now: at(100))
        _ = resumed.connectionEstablished(now: at(200))
        #expect(resumed.received(handshake(timeout: 0), now: at(210)) == [.sessionState(.expired), .closeConnection])

        var byError = connected()
        let request = byError.send(.sync(path: "/"), now: at(1))
        let actions = byError.received(reply(xid: request.xid, err: .sessionExpired), now: at(2))
        #expect(actions.contains(.sessionState(.expired)))

        var byEvent = connected()
        let event = reply(xid: -1, zxid: -1) { WatcherEvent(type: .none, state: .expired, path: "").encode(into: &$0) }
        #expect(byEvent.received(event, now: at(5)) == [.sessionState(.expired), .closeConnection])
    }

    @Test("a resumed handshake that names another session is refused")
    func otherSession() {
        var machine = connected()
        _ = machine.connectionClosed(now: at(100))
        _ = machine.connectionEstablished(now: at(200))
        let actions = machine.received(handshake(sessionID: 0x99), now: at(210))
        guard case .protocolError = actions.first else {
            Issue.record("got \(actions)")
            return
        }
    }

    @Test("close sends CloseSession (op -11) and ends closed on its reply; later requests fail sessionClosed")
    func close() throws {
        var machine = connected()
        let actions = machine.close(now: at(10))
        let header = try decodeRequest(actions.first)
        #expect(header.type == -11)
        #expect(machine.received(reply(xid: header.xid), now: at(20)) == [.sessionState(.closed), .closeConnection])
        guard case .fail(_, let error) = machine.send(.sync(path: "/"), now: at(30)).actions.first else {
            Issue.record("not refused")
            return
        }
        #expect(error.code == .sessionClosed)
    }

    @Test("a connection that breaks before the first handshake is retried without any session state")
    func firstConnectFails() {
        var machine = Machine(configuration: .init(requestedTimeout: .seconds(3)))
        _ = machine.start()
        #expect(machine.connectionClosed(now: t0) == [.reconnect(after: .milliseconds(100))])
        #expect(machine.tick(now: at(100_000)) == [])
    }

    @Test("a server that never answers the handshake is given up after the requested timeout")
    func handshakeTimeout() {
        var machine = Machine(configuration: .init(requestedTimeout: .seconds(3)))
        _ = machine.start()
        _ = machine.connectionEstablished(now: t0)
        #expect(machine.nextDeadline() == at(3000))
        #expect(machine.tick(now: at(2999)) == [])
        #expect(machine.tick(now: at(3000)) == [.closeConnection, .reconnect(after: .milliseconds(100))])
    }
}
