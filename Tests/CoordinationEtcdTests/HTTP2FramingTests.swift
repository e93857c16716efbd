import NIOCore
import NIOHPACK
import Testing

@testable import CoordinationEtcd

@Suite("HTTP/2 framing")
struct HTTP2FramingTests {
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// Feeds `bytes` to a reader in chunks of `chunk` bytes; returns the frames as (type, flags, stream, payload).
    static func read(_ bytes: [UInt8], chunk: Int, maximumFrameSize: Int = HTTP2.defaultMaxFrameSize) throws(HTTP2.ConnectionError)
        -> [(UInt8, UInt8, UInt32, [UInt8])]
    {
        var reader = HTTP2.FrameReader(maximumFrameSize: maximumFrameSize)
        var frames: [(UInt8, UInt8, UInt32, [UInt8])] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            reader.append(ByteBuffer(bytes: bytes[offset..<end]))
            while let frame = try reader.next() {
                frames.append((frame.type, frame.flags, frame.stream, Array(frame.payload.readableBytesView)))
            }
            offset = end
        }
        return frames
    }

    @Test("frames are cut out of the byte stream at every chunk size", arguments: [1, 2, 5, 9, 10, 17, 64, 4096])
    func readsFrames(chunk: Int) throws {
        let settings = Self.frame(type: 0x4, payload: [0, 3, 0, 0, 0, 100])
        let data = Self.frame(type: 0x0, flags: 0x1, stream: 1, payload: Array(repeating: 7, count: 40))
        let empty = Self.frame(type: 0x4, flags: 0x1, payload: [])
        // The reserved bit of the stream id is ignored.
        let reserved = Self.frame(type: 0x8, stream: 0x8000_0003, payload: [0, 0, 0, 1])
        let frames = try Self.read(settings + data + empty + reserved, chunk: chunk)
        #expect(frames.map(\.0) == [0x4, 0x0, 0x4, 0x8])
        #expect(frames.map(\.1) == [0, 0x1, 0x1, 0])
        #expect(frames.map(\.2) == [0, 1, 0, 3])
        #expect(frames[1].3 == Array(repeating: 7, count: 40))
        #expect(frames[2].3.isEmpty)
    }

    @Test("a frame longer than the maximum frame size ends the connection with FRAME_SIZE_ERROR")
    func oversizedFrame() {
        let big = Self.frame(type: 0x0, stream: 1, payload: Array(repeating: 0, count: 101))
        #expect(throws: HTTP2.ConnectionError.self) { try Self.read(big, chunk: 9, maximumFrameSize: 100) }
        do {
            _ = try Self.read(big, chunk: 9, maximumFrameSize: 100)
        } catch {
            #expect(error.code == .frameSizeError)
        }
    }

    @Test("HPACK integers with an N-bit prefix (RFC 7541 C.1)")
    func hpackIntegers() {
        func encode(_ value: Int, _ bits: Int) -> [UInt8] {
            var buffer = ByteBuffer()
            HPACKLiteralWriter.writeInteger(value, prefixBits: bits, flags: 0, to: &buffer)
            return Array(buffer.readableBytesView)
        }
        #expect(encode(10, 5) == [0x0A])
        #expect(encode(1337, 5) == [0x1F, 0x9A, 0x0A])
        #expect(encode(42, 8) == [0x2A])
        #expect(encode(127, 7) == [0x7F, 0x00])
    }

    @Test("request header fields are indexed or literal without indexing, and decode as written")
    func hpackRepresentations() throws {
        var block = ByteBuffer()
        HPACKLiteralWriter.writeIndexed(HPACKLiteralWriter.Static.methodPOST, to: &block)
        HPACKLiteralWriter.writeLiteral(nameIndex: HPACKLiteralWriter.Static.path, value: "/a", to: &block)
        HPACKLiteralWriter.writeLiteral(name: "te", value: "trailers", to: &block)
        #expect(Array(block.readableBytesView) == [0x83, 0x04, 0x02] + Array("/a".utf8) + [0x00, 0x02] + Array("te".utf8) + [0x08] + Array("trailers".utf8))
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        let headers = try decoder.decodeHeaders(from: &block)
        #expect(headers.map { "\($0.name)=\($0.value)" } == [":method=POST", ":path=/a", "te=trailers"])
    }

    @Test("a header block larger than the peer's frame size is split into HEADERS and CONTINUATION frames")
    func headersAndContinuation() throws {
        // Written after a frame already in the buffer, which must stay as it was.
        let before = Self.frame(type: 0x8, payload: [0, 0, 0, 1])
        var out = ByteBuffer(bytes: before)
        HTTP2.writeHeaders(stream: 5, endStream: true, maxFrameSize: 10, to: &out) { $0.writeBytes(Array(0..<25).map { UInt8($0) }) }
        #expect(out.readBytes(length: before.count) == before)
        let frames = try Self.read(Array(out.readableBytesView), chunk: 4096)
        #expect(frames.map(\.0) == [0x1, 0x9, 0x9])
        // END_STREAM on HEADERS only, END_HEADERS on the last frame only.
        #expect(frames.map(\.1) == [0x1, 0x0, 0x4])
        #expect(frames.allSatisfy { $0.2 == 5 })
        #expect(frames.flatMap(\.3) == Array(0..<25).map { UInt8($0) })
        var small = ByteBuffer()
        HTTP2.writeHeaders(stream: 7, endStream: false, maxFrameSize: 10, to: &small) { $0.writeBytes([1, 2]) }
        let one = try Self.read(Array(small.readableBytesView), chunk: 4096)
        #expect(one.count == 1)
        #expect(one[0].1 == 0x4)
        #expect(one[0].2 == 7)
        #expect(one[0].3 == [1, 2])
    }

    @Test("settings: known ones in order, unknown ones skipped, a length not a multiple of 6 refused")
    func settings() throws {
        var payload = ByteBuffer()
        payload.writeBytes([0, 4, 0, 1, 0, 0] + [0, 0x42, 0, 0, 0, 1] + [0, 5, 0, 0, 0x40, 0])
        let settings = try HTTP2.parseSettings(payload)
        #expect(settings.map(\.0) == [.initialWindowSize, .maxFrameSize])
        #expect(settings.map(\.1) == [65_536, 16_384])
        #expect(throws: HTTP2.ConnectionError.self) { try HTTP2.parseSettings(ByteBuffer(bytes: [0, 4, 0])) }
    }

    @Test("padding and priority fields are taken off HEADERS and DATA payloads")
    func padding() throws {
        let headers = HTTP2.Frame(
            type: 0x1, flags: HTTP2.Flag.padded | HTTP2.Flag.priority | HTTP2.Flag.endHeaders, stream: 1,
            payload: ByteBuffer(bytes: [2] + [0, 0, 0, 0, 16] + [9, 9, 9] + [0, 0]))
        #expect(Array(try HTTP2.unpadded(headers, priorityFields: true).readableBytesView) == [9, 9, 9])
        let data = HTTP2.Frame(type: 0x0, flags: HTTP2.Flag.padded, stream: 1, payload: ByteBuffer(bytes: [1, 5, 0]))
        #expect(Array(try HTTP2.unpadded(data, priorityFields: false).readableBytesView) == [5])
        let bad = HTTP2.Frame(type: 0x0, flags: HTTP2.Flag.padded, stream: 1, payload: ByteBuffer(bytes: [3, 5]))
        #expect(throws: HTTP2.ConnectionError.self) { try HTTP2.unpadded(bad, priorityFields: false) }
    }
}
