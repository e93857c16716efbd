import NIOCore
import NIOHPACK
import SwiftProtobuf

/// The status codes of gRPC (the `grpc-status` trailer).
enum GRPCStatusCode: Int, Sendable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    var description: String {
        switch self {
        case .ok: "ok"
        case .cancelled: "cancelled"
        case .unknown: "unknown"
        case .invalidArgument: "invalid argument"
        case .deadlineExceeded: "deadline exceeded"
        case .notFound: "not found"
        case .alreadyExists: "already exists"
        case .permissionDenied: "permission denied"
        case .resourceExhausted: "resource exhausted"
        case .failedPrecondition: "failed precondition"
        case .aborted: "aborted"
        case .outOfRange: "out of range"
        case .unimplemented: "unimplemented"
        case .internal: "internal"
        case .unavailable: "unavailable"
        case .dataLoss: "data loss"
        case .unauthenticated: "unauthenticated"
        }
    }
}

/// A call that ended with a status other than OK, or never reached the server.
struct GRPCCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the failure tells of the call's effect and of its connection.
    enum Kind: Sendable, Equatable {
        /// The server may or may not have processed the call.
        case outcomeUnknown
        /// The server provably never processed the call: its stream was refused (REFUSED_STREAM),
        /// or it was above the last stream id of the server's GOAWAY, or it never left this client.
        /// Safe to send again, even for a write.
        case notProcessed
        /// A long-lived stream was ended because its connection is draining (the member said
        /// GOAWAY, or the connection's stream ids are running out): reopen it at once on the
        /// store's next connection.
        case connectionDraining
    }

    var code: GRPCStatusCode
    var message: String
    var kind: Kind

    init(_ code: GRPCStatusCode, _ message: String, kind: Kind = .outcomeUnknown) {
        self.code = code
        self.message = message
        self.kind = kind
    }

    var description: String { "\(code): \(message)" }
}

/// The pure parts of gRPC over HTTP/2 (the thin layer swift-nio-http2 does not speak): message
/// framing, request headers, and reading a status from response headers or trailers. No I/O, so
/// each rule is unit-tested on its own.
enum GRPCWire {
    /// The 5-byte prefix of every message: a compression flag (0: none) and the length, big-endian.
    static let prefixLength = 5

    /// `message` as one length-prefixed gRPC message.
    static func frame(_ message: some SwiftProtobuf.Message, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let bytes: [UInt8] = try message.serializedBytes()
        var buffer = allocator.buffer(capacity: prefixLength + bytes.count)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    /// Decodes one message's bytes (without its prefix).
    static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from buffer: ByteBuffer) throws -> M {
        do {
            return try M(serializedBytes: ProtobufBytes(buffer: buffer))
        } catch {
            throw GRPCCallError(.internal, "cannot decode \(M.self): \(error)")
        }
    }

    /// The headers of a call's request: POST to `path` (`:scheme` `https` over TLS), the gRPC
    /// content type, `te: trailers`, the deadline as `grpc-timeout` and `metadata` (lower-case
    /// names). `NIOHTTP2Handler` encodes them.
    static func requestHeaders(
        path: String,
        scheme: String,
        authority: String,
        timeout: Duration?,
        metadata: [(String, String)]
    ) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(7 + metadata.count)
        headers.add(name: ":method", value: "POST")
        headers.add(name: ":scheme", value: scheme)
        headers.add(name: ":path", value: path)
        headers.add(name: ":authority", value: authority)
        headers.add(name: "content-type", value: "application/grpc+proto")
        headers.add(name: "te", value: "trailers")
        if let timeout { headers.add(name: "grpc-timeout", value: encodeTimeout(timeout)) }
        for (name, value) in metadata { headers.add(name: name, value: value) }
        return headers
    }

    private static let timeoutUnits: [(Int64, String)] = [
        (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"), (3_600_000_000_000, "H"),
    ]

    /// gRPC's `grpc-timeout`: at most 8 digits and a unit; the finest unit that fits, rounded up.
    static func encodeTimeout(_ timeout: Duration) -> String {
        let (seconds, attoseconds) = timeout.components
        guard seconds >= 0, timeout > .zero else { return "1n" }
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let partial = nanoseconds.partialValue.addingReportingOverflow((attoseconds + 999_999_999) / 1_000_000_000)
        let total = nanoseconds.overflow || partial.overflow ? Int64.max : partial.partialValue
        for (scale, unit) in timeoutUnits {
            let value = total / scale + (total % scale == 0 ? 0 : 1)
            if value <= 99_999_999 { return "\(value)\(unit)" }
        }
        return "99999999H"
    }

    /// What the first HEADERS of a response say: either that messages follow, or (a trailers-only
    /// response, or a refusal before gRPC) the call's final status.
    static func checkResponseHead(_ headers: HPACKHeaders, endStream: Bool) -> ResponseHead {
        let status = headers.first(name: ":status")
        guard status == "200" else {
            // Not gRPC at all (a proxy, or another protocol): map the HTTP status as gRPC does.
            let code: GRPCStatusCode
            switch status.flatMap(Int.init) {
            case 400: code = .internal
            case 401: code = .unauthenticated
            case 403: code = .permissionDenied
            case 404: code = .unimplemented
            case 429, 502, 503, 504: code = .unavailable
            default: code = .unknown
            }
            return .finished(GRPCCallError(code, "HTTP status \(status ?? "missing") from the server"))
        }
        if endStream || headers.first(name: "grpc-status") != nil {
            return .finished(self.status(fromTrailers: headers))
        }
        return .messagesFollow
    }

    enum ResponseHead: Equatable {
        /// A normal start: messages and trailers follow.
        case messagesFollow
        /// The call ended here, with this status (nil: OK).
        case finished(GRPCCallError?)
    }

    /// The status that trailers carry: nil for OK.
    static func status(fromTrailers trailers: HPACKHeaders) -> GRPCCallError? {
        guard let text = trailers.first(name: "grpc-status") else {
            return GRPCCallError(.internal, "the response ended without a grpc-status")
        }
        guard let raw = Int(text), let code = GRPCStatusCode(rawValue: raw) else {
            return GRPCCallError(.unknown, "unknown grpc-status '\(text)'")
        }
        if code == .ok { return nil }
        return GRPCCallError(code, percentDecoded(trailers.first(name: "grpc-message") ?? ""))
    }

    /// `grpc-message` is percent-encoded UTF-8.
    static func percentDecoded(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            if byte == UInt8(ascii: "%"), input.count >= 2,
                let high = hexValue(input[input.startIndex]), let low = hexValue(input[input.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                input = input.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Splits the DATA of one response stream into gRPC messages, whatever the frame boundaries.
struct GRPCMessageReader {
    /// The largest message accepted (etcd answers at most what it was asked for; this bounds memory).
    let maximumMessageSize: Int
    private var buffer: ByteBuffer?

    init(maximumMessageSize: Int) {
        self.maximumMessageSize = maximumMessageSize
    }

    /// Adds `data` and returns every message it completes (without prefixes).
    mutating func append(_ data: ByteBuffer) throws(GRPCCallError) -> [ByteBuffer] {
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = data
        } else {
            var more = data
            buffer!.writeBuffer(&more)
        }
        var messages: [ByteBuffer] = []
        while let head = buffer!.getBytes(at: buffer!.readerIndex, length: GRPCWire.prefixLength) {
            let length = Int(head[1]) << 24 | Int(head[2]) << 16 | Int(head[3]) << 8 | Int(head[4])
            guard head[0] == 0 else {
                throw GRPCCallError(.internal, "the server sent a compressed message, which was not asked for")
            }
            guard length <= maximumMessageSize else {
                throw GRPCCallError(
                    .resourceExhausted, "a message of \(length) bytes is over the limit of \(maximumMessageSize)")
            }
            guard buffer!.readableBytes >= GRPCWire.prefixLength + length else { break }
            buffer!.moveReaderIndex(forwardBy: GRPCWire.prefixLength)
            messages.append(buffer!.readSlice(length: length)!)
        }
        if buffer!.readableBytes == 0 { buffer = nil }
        return messages
    }

    /// Bytes of an unfinished message (a stream that ends with some is malformed).
    var pendingBytes: Int { buffer?.readableBytes ?? 0 }
}

/// A ByteBuffer as swift-protobuf's input bytes, so messages decode without a copy.
private struct ProtobufBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) { self.buffer = buffer }
    init(repeating: UInt8, count: Int) {
        buffer = ByteBuffer(repeating: repeating, count: count)
    }
    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }
    var count: Int { buffer.readableBytes }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }
    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}
