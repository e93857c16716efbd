import NIOCore

/// The parts of HTTP/2 (RFC 9113) and HPACK (RFC 7541) that the etcd client connection speaks:
/// frame types, flags, settings and error codes, a reader that cuts the inbound bytes into frames,
/// and writers for the frames and header blocks it sends. Pure: no I/O, so it is tested byte by byte.
enum HTTP2 {
    /// The client connection preface (RFC 9113 §3.4).
    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let frameHeaderLength = 9
    /// The initial SETTINGS_MAX_FRAME_SIZE, and the one this client keeps for what it receives.
    static let defaultMaxFrameSize = 16_384
    static let defaultWindow = 65_535
    static let maxWindow = Int(Int32.max)
    static let maxStreamID: UInt32 = 0x7FFF_FFFF

    enum FrameType: UInt8 {
        case data = 0x0
        case headers = 0x1
        case priority = 0x2
        case rstStream = 0x3
        case settings = 0x4
        case pushPromise = 0x5
        case ping = 0x6
        case goAway = 0x7
        case windowUpdate = 0x8
        case continuation = 0x9
    }

    enum Flag {
        static let endStream: UInt8 = 0x1
        static let ack: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4
        static let padded: UInt8 = 0x8
        static let priority: UInt8 = 0x20
    }

    enum Setting: UInt16 {
        case headerTableSize = 0x1
        case enablePush = 0x2
        case maxConcurrentStreams = 0x3
        case initialWindowSize = 0x4
        case maxFrameSize = 0x5
        case maxHeaderListSize = 0x6
    }

    struct ErrorCode: RawRepresentable, Hashable, CustomStringConvertible {
        var rawValue: UInt32
        static let noError = ErrorCode(rawValue: 0x0)
        static let protocolError = ErrorCode(rawValue: 0x1)
        static let internalError = ErrorCode(rawValue: 0x2)
        static let flowControlError = ErrorCode(rawValue: 0x3)
        static let streamClosed = ErrorCode(rawValue: 0x5)
        static let frameSizeError = ErrorCode(rawValue: 0x6)
        static let refusedStream = ErrorCode(rawValue: 0x7)
        static let cancel = ErrorCode(rawValue: 0x8)
        static let compressionError = ErrorCode(rawValue: 0x9)
        static let enhanceYourCalm = ErrorCode(rawValue: 0xB)

        var description: String {
            let names: [UInt32: String] = [
                0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
                0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
                0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
                0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
            ]
            return names[rawValue] ?? "error 0x\(String(rawValue, radix: 16))"
        }
    }

    /// A fault that ends the whole connection (RFC 9113 §5.4.1).
    struct ConnectionError: Error, Equatable {
        var code: ErrorCode
        var reason: String
    }

    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: ByteBuffer

        func has(_ flag: UInt8) -> Bool { flags & flag != 0 }
    }

    /// Cuts the inbound byte stream into frames; a frame split over reads waits for its rest.
    struct FrameReader {
        let maximumFrameSize: Int
        private var buffered: ByteBuffer?

        init(maximumFrameSize: Int = HTTP2.defaultMaxFrameSize) {
            self.maximumFrameSize = maximumFrameSize
        }

        mutating func append(_ bytes: ByteBuffer) {
            if var buffered, buffered.readableBytes > 0 {
                var bytes = bytes
                buffered.writeBuffer(&bytes)
                self.buffered = buffered
            } else {
                buffered = bytes
            }
        }

        /// The next whole frame, or nil until more bytes arrive.
        mutating func next() throws(ConnectionError) -> Frame? {
            guard var buffer = buffered, buffer.readableBytes >= HTTP2.frameHeaderLength,
                let lengthAndType = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
                let flags = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self),
                let stream = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt32.self)
            else { return nil }
            let length = Int(lengthAndType >> 8)
            guard length <= maximumFrameSize else {
                throw ConnectionError(
                    code: .frameSizeError, reason: "a frame of \(length) bytes exceeds the maximum of \(maximumFrameSize)")
            }
            guard buffer.readableBytes >= HTTP2.frameHeaderLength + length else { return nil }
            buffer.moveReaderIndex(forwardBy: HTTP2.frameHeaderLength)
            let payload = buffer.readSlice(length: length)!
            buffered = buffer.readableBytes > 0 ? buffer : nil
            return Frame(type: UInt8(truncatingIfNeeded: lengthAndType), flags: flags, stream: stream & maxStreamID, payload: payload)
        }
    }

    static func writeFrameHeader(length: Int, type: FrameType, flags: UInt8 = 0, stream: UInt32, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(length) << 8 | UInt32(type.rawValue))
        buffer.writeInteger(flags)
        buffer.writeInteger(stream)
    }

    static func writeSettings(_ settings: [(Setting, UInt32)], to buffer: inout ByteBuffer) {
        writeFrameHeader(length: settings.count * 6, type: .settings, stream: 0, to: &buffer)
        for (setting, value) in settings {
            buffer.writeInteger(setting.rawValue)
            buffer.writeInteger(value)
        }
    }

    static func writeSettingsAcknowledgement(to buffer: inout ByteBuffer) {
        writeFrameHeader(length: 0, type: .settings, flags: Flag.ack, stream: 0, to: &buffer)
    }

    static func writePing(_ payload: UInt64, ack: Bool, to buffer: inout ByteBuffer) {
        writeFrameHeader(length: 8, type: .ping, flags: ack ? Flag.ack : 0, stream: 0, to: &buffer)
        buffer.writeInteger(payload)
    }

    static func writeWindowUpdate(stream: UInt32, increment: Int, to buffer: inout ByteBuffer) {
        writeFrameHeader(length: 4, type: .windowUpdate, stream: stream, to: &buffer)
        buffer.writeInteger(UInt32(increment))
    }

    static func writeRSTStream(stream: UInt32, code: ErrorCode, to buffer: inout ByteBuffer) {
        writeFrameHeader(length: 4, type: .rstStream, stream: stream, to: &buffer)
        buffer.writeInteger(code.rawValue)
    }

    static func writeGoAway(lastStream: UInt32, code: ErrorCode, to buffer: inout ByteBuffer) {
        writeFrameHeader(length: 8, type: .goAway, stream: 0, to: &buffer)
        buffer.writeInteger(lastStream)
        buffer.writeInteger(code.rawValue)
    }

    /// The header block `writeBlock` writes, as one HEADERS frame or, if it is larger than
    /// `maxFrameSize`, as HEADERS and CONTINUATION frames. The block is written in place, after room
    /// left for the frame header; only a block that must be split is moved.
    static func writeHeaders(
        stream: UInt32, endStream: Bool, maxFrameSize: Int, to buffer: inout ByteBuffer,
        block writeBlock: (inout ByteBuffer) -> Void
    ) {
        let start = buffer.writerIndex
        buffer.writeRepeatingByte(0, count: frameHeaderLength)
        writeBlock(&buffer)
        let length = buffer.writerIndex - start - frameHeaderLength
        guard length > maxFrameSize else {
            buffer.setInteger(UInt32(length) << 8 | UInt32(FrameType.headers.rawValue), at: start)
            buffer.setInteger(Flag.endHeaders | (endStream ? Flag.endStream : 0), at: start + 4)
            buffer.setInteger(stream, at: start + 5)
            return
        }
        var block = buffer.getSlice(at: start + frameHeaderLength, length: length)!
        buffer.moveWriterIndex(to: start)
        var first = true
        repeat {
            var chunk = block.readSlice(length: min(block.readableBytes, maxFrameSize))!
            let last = block.readableBytes == 0
            var flags: UInt8 = last ? Flag.endHeaders : 0
            if first, endStream { flags |= Flag.endStream }
            writeFrameHeader(
                length: chunk.readableBytes, type: first ? .headers : .continuation, flags: flags, stream: stream, to: &buffer)
            buffer.writeBuffer(&chunk)
            first = false
        } while block.readableBytes > 0
    }

    /// The settings of one SETTINGS frame's payload, in order (unknown ones are skipped, as RFC 9113
    /// §6.5.2 requires).
    static func parseSettings(_ payload: ByteBuffer) throws(ConnectionError) -> [(Setting, UInt32)] {
        guard payload.readableBytes % 6 == 0 else {
            throw ConnectionError(code: .frameSizeError, reason: "a SETTINGS frame of \(payload.readableBytes) bytes")
        }
        var payload = payload
        var settings: [(Setting, UInt32)] = []
        while let identifier = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
            if let setting = Setting(rawValue: identifier) { settings.append((setting, value)) }
        }
        return settings
    }

    /// A HEADERS or DATA payload without its padding (and, for HEADERS, its priority fields).
    static func unpadded(_ frame: Frame, priorityFields: Bool) throws(ConnectionError) -> ByteBuffer {
        var payload = frame.payload
        var padding = 0
        if frame.has(Flag.padded) {
            guard let length = payload.readInteger(as: UInt8.self) else {
                throw ConnectionError(code: .frameSizeError, reason: "a padded frame without its pad length")
            }
            padding = Int(length)
        }
        if priorityFields, frame.has(Flag.priority) {
            guard payload.readSlice(length: 5) != nil else {
                throw ConnectionError(code: .frameSizeError, reason: "a HEADERS frame too short for its priority fields")
            }
        }
        guard padding <= payload.readableBytes else {
            throw ConnectionError(code: .protocolError, reason: "padding longer than the frame")
        }
        return payload.readSlice(length: payload.readableBytes - padding)!
    }
}

/// Writes HPACK header blocks for requests without touching the dynamic table: each field is a
/// static-table entry or a literal "without indexing", never Huffman-coded. The server's HPACK
/// state is then never changed by this client, so the peer's SETTINGS_HEADER_TABLE_SIZE needs no
/// answer, and the block for a call costs a few small writes.
enum HPACKLiteralWriter {
    /// Static-table indices (RFC 7541 Appendix A) of the fields and names the requests use.
    enum Static {
        static let authority = 1
        static let methodPOST = 3
        static let path = 4
        static let schemeHTTP = 6
        static let contentType = 31
    }

    /// An integer with an N-bit prefix (RFC 7541 §5.1); `flags` fills the bits above the prefix.
    static func writeInteger(_ value: Int, prefixBits: Int, flags: UInt8, to buffer: inout ByteBuffer) {
        let limit = (1 << prefixBits) - 1
        guard value >= limit else {
            buffer.writeInteger(flags | UInt8(value))
            return
        }
        buffer.writeInteger(flags | UInt8(limit))
        var rest = value - limit
        while rest >= 128 {
            buffer.writeInteger(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        buffer.writeInteger(UInt8(rest))
    }

    static func writeString(_ string: String, to buffer: inout ByteBuffer) {
        writeInteger(string.utf8.count, prefixBits: 7, flags: 0, to: &buffer)
        buffer.writeString(string)
    }

    /// An indexed field: name and value from the static table.
    static func writeIndexed(_ index: Int, to buffer: inout ByteBuffer) {
        writeInteger(index, prefixBits: 7, flags: 0x80, to: &buffer)
    }

    /// A literal without indexing whose name is a static-table entry.
    static func writeLiteral(nameIndex: Int, value: String, to buffer: inout ByteBuffer) {
        writeInteger(nameIndex, prefixBits: 4, flags: 0, to: &buffer)
        writeString(value, to: &buffer)
    }

    /// A literal without indexing with a literal (lower-case) name.
    static func writeLiteral(name: String, value: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        writeString(name, to: &buffer)
        writeString(value, to: &buffer)
    }
}
