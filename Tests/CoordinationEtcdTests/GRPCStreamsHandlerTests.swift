import NIOCore
import NIOEmbedded
import NIOHPACK
import Testing

@testable import CoordinationEtcd

/// The HTTP/2 client driven frame by frame on an embedded channel: what a server sends is written
/// in by hand, what the client writes is read back and parsed.
@Suite("gRPC streams handler (HTTP/2 client)")
struct GRPCStreamsHandlerTests {
    final class Observer: GRPCStreamObserver {
        var messages: [[UInt8]] = []
        var outcome: GRPCCallError?? = .none

        func received(_ message: ByteBuffer) { messages.append(Array(message.readableBytesView)) }
        func finished(_ error: GRPCCallError?) {
            #expect(outcome == nil, "finished twice")
            outcome = .some(error)
        }
    }

    typealias Frame = (type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])

    /// A connected handler whose preface, SETTINGS and WINDOW_UPDATE have been read and checked.
    final class Connection {
        let channel: EmbeddedChannel
        let handler: GRPCStreamsHandler
        private let box: UnusableBox
        private var reader = HTTP2.FrameReader(maximumFrameSize: 1 << 24)
        private var encoder = HPACKEncoder(allocator: ByteBufferAllocator())

        final class UnusableBox { var unusable = false }
        var isUnusable: Bool { box.unusable }

        init() throws {
            let box = UnusableBox()
            self.box = box
            handler = GRPCStreamsHandler(authority: "127.0.0.1:2379", maximumMessageSize: 1 << 20) { _ in box.unusable = true }
            channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2379)).wait()
            var first = try #require(try channel.readOutbound(as: ByteBuffer.self))
            #expect(first.readBytes(length: HTTP2.preface.count) == HTTP2.preface)
            reader.append(first)
            let frames = try drainFrames()
            #expect(frames.map(\.type) == [0x4, 0x8])
        }

        /// Every frame the client has written since the last call.
        func written() throws -> [Frame] {
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { reader.append(buffer) }
            return try drainFrames()
        }

        private func drainFrames() throws -> [Frame] {
            var frames: [Frame] = []
            while let frame = try reader.next() {
                frames.append((frame.type, frame.flags, frame.stream, Array(frame.payload.readableBytesView)))
            }
            return frames
        }

        func serverSends(_ bytes: [UInt8]) throws {
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        }

        func headerBlock(_ headers: [(String, String)]) throws -> [UInt8] {
            var buffer = ByteBuffer()
            try encoder.encode(headers: HPACKHeaders(headers), to: &buffer)
            return Array(buffer.readableBytesView)
        }
    }

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        HTTP2FramingTests.frame(type: type, flags: flags, stream: stream, payload: payload)
    }

    static func settings(_ values: [(UInt16, UInt32)]) -> [UInt8] {
        frame(type: 0x4, payload: values.flatMap { id, value in
            [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        })
    }

    static func message(_ bytes: [UInt8]) -> [UInt8] {
        [0, UInt8(bytes.count >> 24), UInt8(bytes.count >> 16 & 0xFF), UInt8(bytes.count >> 8 & 0xFF), UInt8(bytes.count & 0xFF)] + bytes
    }

    static func windowUpdate(stream: UInt32, _ increment: UInt32) -> [UInt8] {
        frame(type: 0x8, stream: stream, payload: [UInt8(increment >> 24), UInt8(increment >> 16 & 0xFF), UInt8(increment >> 8 & 0xFF), UInt8(increment & 0xFF)])
    }

    @Test("a unary call: HEADERS and DATA out; SETTINGS acknowledged, PING answered, reply and trailers in")
    func unaryCall() throws {
        let connection = try Connection()
        let observer = Observer()
        let id = try connection.handler.open(path: "/etcdserverpb.KV/Range", metadata: [], timeout: .seconds(1), observer: observer).get()
        #expect(id == 1)
        connection.handler.send(id, ByteBuffer(bytes: Self.message([1, 2, 3])), end: true, flush: true)
        let request = try connection.written()
        #expect(request.map(\.type) == [0x1, 0x0])
        #expect(request[0].flags == HTTP2.Flag.endHeaders)
        #expect(request[1].flags == HTTP2.Flag.endStream)
        #expect(request[1].payload == Self.message([1, 2, 3]))
        var block = ByteBuffer(bytes: request[0].payload)
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        #expect(try decoder.decodeHeaders(from: &block).first(name: ":path") == "/etcdserverpb.KV/Range")

        try connection.serverSends(
            Self.settings([(0x3, 100)]) + Self.frame(type: 0x6, payload: [1, 2, 3, 4, 5, 6, 7, 8]))
        let answers = try connection.written()
        #expect(answers.map(\.type) == [0x4, 0x6])
        #expect(answers.map(\.flags) == [HTTP2.Flag.ack, HTTP2.Flag.ack])
        #expect(answers[1].payload == [1, 2, 3, 4, 5, 6, 7, 8])

        let head = try connection.headerBlock([(":status", "200"), ("content-type", "application/grpc")])
        let trailers = try connection.headerBlock([("grpc-status", "0")])
        try connection.serverSends(
            Self.frame(type: 0x1, flags: HTTP2.Flag.endHeaders, stream: 1, payload: head)
                + Self.frame(type: 0x0, stream: 1, payload: Self.message([9, 9]))
                + Self.frame(type: 0x1, flags: HTTP2.Flag.endHeaders | HTTP2.Flag.endStream, stream: 1, payload: trailers))
        #expect(observer.messages == [[9, 9]])
        #expect(observer.outcome == .some(nil))
        #expect(connection.handler.openStreams == 0)
        #expect(try connection.written().isEmpty)
    }

    @Test("a trailers-only error, split over HEADERS and CONTINUATION, ends the call with its status")
    func continuationAndStatus() throws {
        let connection = try Connection()
        let observer = Observer()
        let id = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: observer).get()
        connection.handler.send(id, ByteBuffer(bytes: Self.message([])), end: true, flush: true)
        _ = try connection.written()
        let block = try connection.headerBlock([(":status", "200"), ("grpc-status", "5"), ("grpc-message", "gone")])
        try connection.serverSends(
            Self.frame(type: 0x1, flags: HTTP2.Flag.endStream, stream: id, payload: Array(block[..<3]))
                + Self.frame(type: 0x9, stream: id, payload: Array(block[3..<5]))
                + Self.frame(type: 0x9, flags: HTTP2.Flag.endHeaders, stream: id, payload: Array(block[5...])))
        #expect(observer.outcome == .some(GRPCCallError(.notFound, "gone")))
    }

    @Test("DATA waits for the server's windows and goes out as they open; END_STREAM only on the last piece")
    func flowControl() throws {
        let connection = try Connection()
        // The server allows 10 bytes a stream and frames of up to 16 KiB.
        try connection.serverSends(Self.settings([(0x4, 10)]))
        _ = try connection.written()
        let observer = Observer()
        let id = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: observer).get()
        let payload = Self.message(Array(repeating: 7, count: 20))  // 25 bytes
        connection.handler.send(id, ByteBuffer(bytes: payload), end: true, flush: true)
        var sent = try connection.written()
        #expect(sent.map(\.type) == [0x1, 0x0])
        #expect(sent[1].payload.count == 10)
        #expect(sent[1].flags == 0)
        // A connection-level update alone does not open the stream's window.
        try connection.serverSends(Self.windowUpdate(stream: 0, 100))
        #expect(try connection.written().isEmpty)
        try connection.serverSends(Self.windowUpdate(stream: id, 8))
        sent = try connection.written()
        #expect(sent.map(\.payload.count) == [8])
        #expect(sent[0].flags == 0)
        // A larger initial window applies to the open stream too.
        try connection.serverSends(Self.settings([(0x4, 1000)]))
        sent = try connection.written()
        #expect(sent.map(\.type) == [0x0, 0x4])
        #expect(sent[0].payload.count == 7)
        #expect(sent[0].flags == HTTP2.Flag.endStream)
        #expect(sent.filter { $0.type == 0x0 }.flatMap(\.payload).count == 7)
        #expect(observer.outcome == nil)
    }

    @Test("a framing fault ends the connection: GOAWAY, every call fails, the channel closes")
    func protocolError() throws {
        let connection = try Connection()
        let observer = Observer()
        _ = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: observer).get()
        connection.handler.flush()
        _ = try connection.written()
        // DATA on stream 0 is a connection error (RFC 9113 §6.1).
        try connection.serverSends(Self.frame(type: 0x0, stream: 0, payload: [1]))
        let frames = try connection.written()
        #expect(frames.map(\.type) == [0x7])
        #expect(Array(frames[0].payload[4..<8]) == [0, 0, 0, 1])  // PROTOCOL_ERROR
        #expect(observer.outcome??.code == .unavailable)
        #expect(connection.isUnusable)
        #expect(!connection.channel.isActive)
    }

    @Test("a header block interrupted by another frame is a protocol error")
    func interruptedHeaderBlock() throws {
        let connection = try Connection()
        let observer = Observer()
        let id = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: observer).get()
        connection.handler.flush()
        _ = try connection.written()
        let block = try connection.headerBlock([(":status", "200")])
        try connection.serverSends(
            Self.frame(type: 0x1, stream: id, payload: block) + Self.frame(type: 0x6, payload: [0, 0, 0, 0, 0, 0, 0, 0]))
        #expect(try connection.written().map(\.type) == [0x7])
        #expect(observer.outcome??.code == .unavailable)
    }

    @Test("GOAWAY: calls the server did not take fail as unavailable, the one it took still completes")
    func goAway() throws {
        let connection = try Connection()
        let taken = Observer()
        let unseen = Observer()
        let first = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: taken).get()
        let second = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: unseen).get()
        connection.handler.flush()
        _ = try connection.written()
        try connection.serverSends(Self.frame(type: 0x7, payload: [0, 0, 0, UInt8(first), 0, 0, 0, 0]))
        #expect(connection.isUnusable)
        #expect(unseen.outcome??.code == .unavailable)
        #expect(taken.outcome == nil)
        if case .success = connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: Observer()) {
            Issue.record("a connection going away must not take new calls")
        }
        let trailers = try connection.headerBlock([(":status", "200"), ("grpc-status", "0")])
        try connection.serverSends(
            Self.frame(type: 0x1, flags: HTTP2.Flag.endHeaders | HTTP2.Flag.endStream, stream: first, payload: trailers))
        #expect(taken.outcome == .some(nil))
        #expect(second == 3)
        #expect(!connection.channel.isActive)
    }

    @Test("a stream reset by the server fails only that call")
    func resetStream() throws {
        let connection = try Connection()
        let reset = Observer()
        let other = Observer()
        let first = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: reset).get()
        _ = try connection.handler.open(path: "/p", metadata: [], timeout: nil, observer: other).get()
        connection.handler.flush()
        _ = try connection.written()
        try connection.serverSends(Self.frame(type: 0x3, stream: first, payload: [0, 0, 0, 7]))
        #expect(reset.outcome??.code == .unavailable)
        #expect(other.outcome == nil)
        #expect(connection.handler.openStreams == 1)
        #expect(!connection.isUnusable)
    }
}
