import NIOCore
import NIOHTTP2

/// Answers the server's HTTP/2 PING frames below the HTTP/2 handler.
///
/// Why: etcd is a grpc-go server, and grpc-go estimates the bandwidth-delay product by sending a
/// PING after the DATA it receives whenever its previous one was acknowledged. With small unary
/// requests the estimate never grows, so the server keeps doing this — about one PING per request.
/// swift-nio-http2 (since 1.46) counts received PING/SETTINGS/PRIORITY frames as a denial-of-service
/// signal and closes the connection after 200 in 30 s (`ExcessiveControlFrames`, HTTP/2 error
/// ENHANCE_YOUR_CALM), which the client saw as calls failing with "Stream unexpectedly closed" after
/// a few hundred requests on one connection. `NIOHTTP2Handler` takes that limit only through an
/// internal initialiser, so this handler
/// sits between the socket (or TLS) and the HTTP/2 handler, acknowledges each PING itself and
/// hands everything else through untouched.
///
/// Only well-formed PINGs that ask for an answer (8-byte payload, no ACK flag, stream 0) are taken
/// out; a malformed one is passed on so the HTTP/2 handler reports the protocol error as before.
final class PingAnsweringHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var scanner = HTTP2PingScanner()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        let (passed, pings) = scanner.scan(&input, allocator: context.channel.allocator)
        if !pings.isEmpty {
            var answers = context.channel.allocator.buffer(capacity: pings.count * HTTP2PingScanner.frameLength)
            for payload in pings { HTTP2PingScanner.writeAcknowledgement(of: payload, to: &answers) }
            context.writeAndFlush(wrapOutboundOut(answers), promise: nil)
        }
        if let passed { context.fireChannelRead(wrapInboundOut(passed)) }
    }
}

/// Splits the inbound HTTP/2 byte stream of a client connection into frames just far enough to find
/// PING frames that ask for an answer. Pure: no I/O, so it is unit-tested byte by byte.
struct HTTP2PingScanner {
    static let headerLength = 9
    static let pingType: UInt8 = 0x6
    static let ackFlag: UInt8 = 0x1
    static let pingPayloadLength = 8
    static let frameLength = headerLength + pingPayloadLength

    private enum State {
        /// Collecting a frame header (the bytes seen so far).
        case header([UInt8])
        /// Passing on this many more payload bytes of the current frame.
        case passing(Int)
        /// Collecting the payload of a PING to answer.
        case ping([UInt8])
    }

    private var state = State.header([])

    /// Consumes `input`; returns the bytes to hand on (nil if none) and the payloads of the PINGs to
    /// acknowledge, in arrival order.
    mutating func scan(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) -> (ByteBuffer?, [UInt64]) {
        // Fast path: in the middle of a frame that outlasts this read, pass the whole read on.
        if case .passing(let remaining) = state, remaining >= input.readableBytes {
            state = remaining == input.readableBytes ? .header([]) : .passing(remaining - input.readableBytes)
            let all = input
            input.moveReaderIndex(to: input.writerIndex)
            return (all, [])
        }
        // Fast path: a read that starts at a frame boundary and holds no PING to answer (a reply's
        // HEADERS, DATA and trailers) is handed on as it is, without a copy.
        if case .header(let partial) = state, partial.isEmpty, let after = Self.stateAfterFramesWithoutPings(input) {
            state = after
            let all = input
            input.moveReaderIndex(to: input.writerIndex)
            return (all, [])
        }
        var output = allocator.buffer(capacity: input.readableBytes)
        var pings: [UInt64] = []
        while input.readableBytes > 0 {
            switch state {
            case .passing(let remaining):
                let count = min(remaining, input.readableBytes)
                var slice = input.readSlice(length: count)!
                output.writeBuffer(&slice)
                state = remaining == count ? .header([]) : .passing(remaining - count)
            case .header(var bytes):
                let count = min(Self.headerLength - bytes.count, input.readableBytes)
                bytes += input.readBytes(length: count)!
                guard bytes.count == Self.headerLength else {
                    state = .header(bytes)
                    continue
                }
                let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
                let type = bytes[3]
                let flags = bytes[4]
                let stream = (UInt32(bytes[5]) << 24 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 8 | UInt32(bytes[8]))
                    & 0x7FFF_FFFF
                if Self.asksForAnswer(type: type, flags: flags, length: length, stream: stream) {
                    state = .ping([])
                } else {
                    output.writeBytes(bytes)
                    state = length == 0 ? .header([]) : .passing(length)
                }
            case .ping(var payload):
                let count = min(Self.pingPayloadLength - payload.count, input.readableBytes)
                payload += input.readBytes(length: count)!
                if payload.count == Self.pingPayloadLength {
                    pings.append(payload.reduce(0) { $0 << 8 | UInt64($1) })
                    state = .header([])
                } else {
                    state = .ping(payload)
                }
            }
        }
        return (output.readableBytes > 0 ? output : nil, pings)
    }

    private static func asksForAnswer(type: UInt8, flags: UInt8, length: Int, stream: UInt32) -> Bool {
        type == pingType && flags & ackFlag == 0 && length == pingPayloadLength && stream == 0
    }

    /// Walks the frames of `input` (which starts at a frame boundary) in place: the state after it,
    /// or nil if it holds a PING to answer or ends inside a frame header.
    private static func stateAfterFramesWithoutPings(_ input: ByteBuffer) -> State? {
        var index = input.readerIndex
        let end = input.writerIndex
        while index < end {
            guard end - index >= headerLength,
                let lengthAndType = input.getInteger(at: index, as: UInt32.self),
                let flags = input.getInteger(at: index + 4, as: UInt8.self),
                let stream = input.getInteger(at: index + 5, as: UInt32.self)
            else { return nil }
            let length = Int(lengthAndType >> 8)
            if asksForAnswer(type: UInt8(truncatingIfNeeded: lengthAndType), flags: flags, length: length, stream: stream & 0x7FFF_FFFF) {
                return nil
            }
            index += headerLength + length
        }
        return index == end ? .header([]) : .passing(index - end)
    }

    /// Writes a PING frame with the ACK flag and `payload` (RFC 9113 §6.7).
    static func writeAcknowledgement(of payload: UInt64, to buffer: inout ByteBuffer) {
        buffer.writeBytes([0, 0, UInt8(pingPayloadLength), pingType, ackFlag, 0, 0, 0, 0])
        buffer.writeInteger(payload, endianness: .big)
    }
}
