import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import CoordinationEtcd

/// The gRPC layer above `NIOHTTP2Handler`, driven frame by frame on an embedded channel: what
/// `NIOHTTP2Handler` would hand up from the server is written in as `HTTP2Frame`s, and what the
/// handler writes is read back as `HTTP2Frame`s. HTTP/2 itself (framing, HPACK, flow control,
/// acknowledgements) is swift-nio-http2's and is not tested here.
@Suite("gRPC streams handler (above NIOHTTP2Handler)")
struct GRPCStreamsHandlerTests {
    final class Observer: GRPCStreamObserver {
        var messages: [[UInt8]] = []
        var outcome: GRPCCallError?? = .none
        var toldLeaving = 0

        func received(_ message: ByteBuffer) { messages.append(Array(message.readableBytesView)) }
        func connectionDraining() { toldLeaving += 1 }
        func finished(_ error: GRPCCallError?) {
            #expect(outcome == nil, "finished twice")
            outcome = .some(error)
        }
    }

    /// A connected handler whose first write (the connection window raised) has been read.
    final class Connection {
        let channel: EmbeddedChannel
        let handler: GRPCStreamsHandler
        private let box: UnusableBox

        final class UnusableBox { var unusable = false }
        var isUnusable: Bool { box.unusable }

        init(tls: Bool = false, firstStreamID: Int = 1, retirementStreamID: Int = GRPCStreamsHandler.retirementStreamID)
            throws
        {
            let box = UnusableBox()
            self.box = box
            handler = GRPCStreamsHandler(
                authority: "127.0.0.1:2379", tls: tls, maximumMessageSize: 1 << 20, firstStreamID: firstStreamID,
                retirementStreamID: retirementStreamID
            ) { _ in box.unusable = true }
            channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2379)).wait()
            let first = try written()
            #expect(first.count == 1)
            guard case .windowUpdate(let increment) = first.first?.payload else {
                Issue.record("expected the connection window to be raised first, got \(first)")
                return
            }
            #expect(first[0].streamID == .rootStream)
            #expect(increment == GRPCStreamsHandler.connectionWindow - 65_535)
        }

        /// Every frame the handler has written since the last call.
        func written() throws -> [HTTP2Frame] {
            var frames: [HTTP2Frame] = []
            while let frame = try channel.readOutbound(as: HTTP2Frame.self) { frames.append(frame) }
            return frames
        }

        func serverSends(_ frames: HTTP2Frame...) throws {
            for frame in frames { try channel.writeInbound(frame) }
        }

        func serverEvent(_ event: Any) {
            channel.pipeline.fireUserInboundEventTriggered(event)
        }
    }

    static func message(_ bytes: [UInt8]) -> ByteBuffer {
        ByteBuffer(
            bytes: [
                0, UInt8(bytes.count >> 24), UInt8(bytes.count >> 16 & 0xFF), UInt8(bytes.count >> 8 & 0xFF),
                UInt8(bytes.count & 0xFF),
            ] + bytes)
    }

    static func headers(_ stream: Int, _ fields: [(String, String)], endStream: Bool = false) -> HTTP2Frame {
        HTTP2Frame(
            streamID: HTTP2StreamID(stream),
            payload: .headers(.init(headers: HPACKHeaders(fields), endStream: endStream)))
    }

    static func data(_ stream: Int, _ bytes: ByteBuffer, endStream: Bool = false) -> HTTP2Frame {
        HTTP2Frame(
            streamID: HTTP2StreamID(stream), payload: .data(.init(data: .byteBuffer(bytes), endStream: endStream)))
    }

    static let okHead = [(":status", "200"), ("content-type", "application/grpc")]

    static func resetCode(_ frame: HTTP2Frame) -> HTTP2ErrorCode? {
        if case .rstStream(let code) = frame.payload { return code }
        return nil
    }

    static func increment(_ frame: HTTP2Frame) -> Int? {
        if case .windowUpdate(let increment) = frame.payload { return increment }
        return nil
    }

    @Test("a unary call: HEADERS with gRPC's request headers and DATA out; reply and trailers in")
    func unaryCall() throws {
        let connection = try Connection()
        let observer = Observer()
        let id = try connection.handler.open(
            path: "/etcdserverpb.KV/Range", metadata: [("token", "t")], timeout: .seconds(1), observer: observer
        ).get()
        #expect(id == 1)
        connection.handler.send(id, Self.message([1, 2, 3]), end: true, flush: true)
        let request = try connection.written()
        #expect(request.count == 2)
        guard case .headers(let head) = request[0].payload, case .data(let body) = request[1].payload else {
            Issue.record("expected HEADERS and DATA, got \(request)")
            return
        }
        #expect(!head.endStream)
        #expect(head.headers.first(name: ":method") == "POST")
        #expect(head.headers.first(name: ":scheme") == "http")
        #expect(head.headers.first(name: ":path") == "/etcdserverpb.KV/Range")
        #expect(head.headers.first(name: ":authority") == "127.0.0.1:2379")
        #expect(head.headers.first(name: "content-type") == "application/grpc+proto")
        #expect(head.headers.first(name: "te") == "trailers")
        #expect(head.headers.first(name: "grpc-timeout") == "1000000u")
        #expect(head.headers.first(name: "token") == "t")
        #expect(body.endStream)
        #expect(body.data == IOData.byteBuffer(Self.message([1, 2, 3])))

        try connection.serverSends(
            Self.headers(1, Self.okHead), Self.data(1, Self.message([9, 9])),
            Self.headers(1, [("grpc-status", "0")], endStream: true))
        #expect(observer.messages == [[9, 9]])
        #expect(observer.outcome == .some(nil))
        #expect(connection.handler.openStreams == 0)
        #expect(try connection.written().isEmpty, "a call ended by trailers after our END_STREAM needs no reset")
    }

    @Test("over TLS the request's :scheme is https")
    func httpsScheme() throws {
        let connection = try Connection(tls: true)
        let id = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: Observer()).get()
        connection.handler.flush()
        guard case .headers(let head) = try connection.written().first?.payload else {
            Issue.record("no HEADERS")
            return
        }
        #expect(head.headers.first(name: ":scheme") == "https")
        #expect(head.headers.first(name: "grpc-timeout") == nil)
        connection.handler.cancel(id)
    }

    @Test("a message split over DATA frames arrives whole; a trailers-only error ends the call with its status")
    func splitMessageAndTrailersOnly() throws {
        let connection = try Connection()
        let first = Observer()
        let second = Observer()
        _ = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: first).get()
        _ = try connection.handler.open(path: "/b", metadata: [], timeout: nil, observer: second).get()
        var whole = Self.message([1, 2, 3, 4])
        let part = whole.readSlice(length: 6)!
        try connection.serverSends(Self.headers(1, Self.okHead), Self.data(1, part))
        #expect(first.messages.isEmpty)
        try connection.serverSends(Self.data(1, whole), Self.headers(1, [("grpc-status", "0")], endStream: true))
        #expect(first.messages == [[1, 2, 3, 4]])
        try connection.serverSends(
            Self.headers(3, Self.okHead + [("grpc-status", "5"), ("grpc-message", "no%20such%20key")], endStream: true))
        #expect(second.outcome == .some(GRPCCallError(.notFound, "no such key")))
    }

    @Test("a bidirectional call the server ends first is reset, so the stream closes on both sides")
    func serverEndsStreamFirst() throws {
        let connection = try Connection()
        let observer = Observer()
        let id = try connection.handler.open(
            path: "/etcdserverpb.Watch/Watch", metadata: [], timeout: nil, observer: observer
        ).get()
        connection.handler.send(id, Self.message([1]), end: false, flush: true)
        _ = try connection.written()
        try connection.serverSends(
            Self.headers(1, Self.okHead), Self.headers(1, [("grpc-status", "14")], endStream: true))
        #expect(observer.outcome??.code == .unavailable)
        let after = try connection.written()
        #expect(after.count == 1)
        #expect(after.first.flatMap(Self.resetCode) == .cancel)
    }

    @Test("GOAWAY: calls the server did not take fail as not processed, the one it took is told and still completes")
    func goAway() throws {
        let connection = try Connection()
        let taken = Observer()
        let notTaken = Observer()
        _ = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: taken).get()
        _ = try connection.handler.open(path: "/b", metadata: [], timeout: nil, observer: notTaken).get()
        try connection.serverSends(
            HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: 1, errorCode: .noError, opaqueData: nil)))
        #expect(connection.isUnusable)
        #expect(notTaken.outcome??.code == .unavailable)
        #expect(notTaken.outcome??.kind == .notProcessed)
        #expect(notTaken.toldLeaving == 0)
        #expect(taken.outcome == nil)
        #expect(taken.toldLeaving == 1, "a stream the leaving member took is told, so a long-lived one can move")
        if case .failure(let error) = connection.handler.open(
            path: "/c", metadata: [], timeout: nil, observer: Observer())
        {
            #expect(error.code == .unavailable)
            #expect(error.kind == .notProcessed)
        } else {
            Issue.record("a call was opened after GOAWAY")
        }
        try connection.serverSends(Self.headers(1, Self.okHead + [("grpc-status", "0")], endStream: true))
        #expect(taken.outcome == .some(nil))
        #expect(!connection.channel.isActive, "the connection closes once its last call is done")
    }

    @Test("a stream reset by the server, or closed by NIOHTTP2Handler, fails only that call")
    func streamReset() throws {
        let connection = try Connection()
        let reset = Observer()
        let closed = Observer()
        let other = Observer()
        _ = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: reset).get()
        _ = try connection.handler.open(path: "/b", metadata: [], timeout: nil, observer: closed).get()
        _ = try connection.handler.open(path: "/c", metadata: [], timeout: nil, observer: other).get()
        connection.handler.flush()
        _ = try connection.written()
        try connection.serverSends(HTTP2Frame(streamID: 1, payload: .rstStream(.refusedStream)))
        #expect(reset.outcome??.code == .unavailable)
        #expect(reset.outcome??.kind == .notProcessed, "a refused stream was not processed (RFC 9113 §8.7)")
        connection.serverEvent(StreamClosedEvent(streamID: 3, reason: .protocolError))
        #expect(closed.outcome??.code == .unavailable)
        #expect(closed.outcome??.kind == .outcomeUnknown)
        #expect(other.outcome == nil)
        #expect(!connection.isUnusable)
        #expect(try connection.written().isEmpty, "no reset for streams that are closed already")
    }

    @Test("inbound credit: a window is topped up once half of it is used, a finished call's never")
    func credit() throws {
        let connection = try Connection()
        _ = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: Observer()).get()
        connection.handler.flush()
        _ = try connection.written()
        let stream = GRPCStreamsHandler.streamWindow
        let whole = GRPCStreamsHandler.connectionWindow
        connection.serverEvent(
            NIOHTTP2WindowUpdatedEvent(streamID: 1, inboundWindowSize: stream / 2 + 1, outboundWindowSize: nil))
        connection.serverEvent(
            NIOHTTP2WindowUpdatedEvent(streamID: .rootStream, inboundWindowSize: whole / 2 + 1, outboundWindowSize: nil)
        )
        #expect(try connection.written().isEmpty)
        connection.serverEvent(
            NIOHTTP2WindowUpdatedEvent(streamID: 1, inboundWindowSize: 1000, outboundWindowSize: nil))
        connection.serverEvent(
            NIOHTTP2WindowUpdatedEvent(streamID: .rootStream, inboundWindowSize: 2000, outboundWindowSize: nil))
        connection.handler.flush()
        let updates = try connection.written()
        #expect(updates.map(\.streamID) == [1, .rootStream])
        #expect(updates.compactMap(Self.increment) == [stream - 1000, whole - 2000])
        connection.handler.cancel(1)
        _ = try connection.written()
        connection.serverEvent(NIOHTTP2WindowUpdatedEvent(streamID: 1, inboundWindowSize: 0, outboundWindowSize: nil))
        connection.handler.flush()
        #expect(try connection.written().isEmpty)
    }

    @Test(
        "a stream that credits on consumption: its window is topped up for what the reader handled, not for what arrived"
    )
    func creditOnConsume() throws {
        let connection = try Connection()
        let observer = Observer()
        _ = try connection.handler.open(
            path: "/w", metadata: [], timeout: nil, creditOnConsume: true, observer: observer
        ).get()
        connection.handler.flush()
        _ = try connection.written()
        try connection.serverSends(Self.headers(1, Self.okHead))
        let window = GRPCStreamsHandler.streamWindow
        let frame = window / 8  // each message with its prefix
        for _ in 0..<6 {
            try connection.serverSends(Self.data(1, Self.message([UInt8](repeating: 7, count: frame - 5))))
        }
        #expect(observer.messages.count == 6)
        // NIOHTTP2Handler reports the window down by what arrived; nothing has been consumed.
        connection.serverEvent(
            NIOHTTP2WindowUpdatedEvent(streamID: 1, inboundWindowSize: window - 6 * frame, outboundWindowSize: nil))
        connection.handler.flush()
        #expect(try connection.written().isEmpty, "no credit for messages the reader has not handled")
        connection.handler.consumed(1, bytes: 2 * frame)
        #expect(try connection.written().isEmpty, "a quarter of the window is not worth an update")
        connection.handler.consumed(1, bytes: 2 * frame)
        let updates = try connection.written()
        #expect(updates.map(\.streamID) == [1])
        #expect(updates.compactMap(Self.increment) == [4 * frame], "credit for the four messages handled")
    }

    @Test(
        "stream ids running out: past the retirement id the connection takes no new calls, tells its streams, and closes once drained"
    )
    func streamIDsRunOut() throws {
        let last = GRPCStreamsHandler.maximumStreamID
        let connection = try Connection(firstStreamID: last - 4, retirementStreamID: last - 2)
        let first = Observer()
        let id = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: first).get()
        #expect(id == HTTP2StreamID(last - 4))
        #expect(!connection.isUnusable)
        let second = Observer()
        _ = try connection.handler.open(path: "/b", metadata: [], timeout: nil, observer: second).get()
        #expect(connection.isUnusable, "the transport is told to open a new connection")
        if case .success = connection.handler.open(path: "/c", metadata: [], timeout: nil, observer: Observer()) {
            Issue.record("a call was opened on a retired connection")
        }
        #expect(first.toldLeaving == 0 && second.toldLeaving == 0, "told once the call that retired it is set up")
        connection.channel.embeddedEventLoop.run()
        #expect(
            first.toldLeaving == 1 && second.toldLeaving == 1, "its streams are told to move (a long-lived one does)")
        try connection.serverSends(Self.headers(last - 4, Self.okHead + [("grpc-status", "0")], endStream: true))
        #expect(connection.channel.isActive, "still draining")
        try connection.serverSends(Self.headers(last - 2, Self.okHead + [("grpc-status", "0")], endStream: true))
        #expect(first.outcome == .some(nil) && second.outcome == .some(nil))
        #expect(!connection.channel.isActive, "closed once drained")
    }

    @Test("the very last stream id is usable, and nothing past it is opened")
    func lastStreamID() throws {
        let last = GRPCStreamsHandler.maximumStreamID
        let connection = try Connection(firstStreamID: last, retirementStreamID: last + 2)
        let id = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: Observer()).get()
        #expect(id == HTTP2StreamID(last))
        #expect(connection.isUnusable)
        if case .success = connection.handler.open(path: "/b", metadata: [], timeout: nil, observer: Observer()) {
            Issue.record("a stream id past 2^31-1")
        }
    }

    @Test("a connection fault fails every call and closes the channel; a write to a stream just ended does not")
    func connectionFault() throws {
        let connection = try Connection()
        let observer = Observer()
        _ = try connection.handler.open(path: "/a", metadata: [], timeout: nil, observer: observer).get()
        connection.channel.pipeline.fireErrorCaught(NIOHTTP2Errors.noSuchStream(streamID: 7))
        #expect(connection.channel.isActive)
        #expect(observer.outcome == nil)
        connection.channel.pipeline.fireErrorCaught(NIOHTTP2Errors.excessiveControlFrames())
        #expect(observer.outcome??.code == .unavailable)
        #expect(connection.isUnusable)
        #expect(!connection.channel.isActive)
    }
}
