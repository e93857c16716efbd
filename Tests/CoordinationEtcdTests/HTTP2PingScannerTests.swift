import NIOCore
import Testing

@testable import CoordinationEtcd

@Suite("HTTP/2 ping scanner")
struct HTTP2PingScannerTests {
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    static let settings = frame(type: 0x4, payload: [0, 3, 0, 0, 0, 100])
    static let ping = frame(type: 0x6, payload: [1, 2, 3, 4, 5, 6, 7, 8])
    static let pingAck = frame(type: 0x6, flags: 0x1, payload: [9, 9, 9, 9, 9, 9, 9, 9])
    static let data = frame(type: 0x0, flags: 0x1, stream: 1, payload: Array(repeating: 0x6, count: 40))
    static let emptySettingsAck = frame(type: 0x4, flags: 0x1, payload: [])

    /// Feeds `bytes` in chunks of `chunk` bytes; returns what was passed on and the pings found.
    static func run(_ bytes: [UInt8], chunk: Int) -> ([UInt8], [UInt64]) {
        var scanner = HTTP2PingScanner()
        var passed: [UInt8] = []
        var pings: [UInt64] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            var input = ByteBuffer(bytes: bytes[offset..<end])
            let (out, found) = scanner.scan(&input, allocator: ByteBufferAllocator())
            #expect(input.readableBytes == 0)
            if let out { passed += Array(out.readableBytesView) }
            pings += found
            offset = end
        }
        return (passed, pings)
    }

    @Test("pings that ask for an answer are taken out, everything else passes unchanged", arguments: [1, 2, 5, 9, 17, 64, 4096])
    func takesOutPings(chunk: Int) {
        let stream = Self.settings + Self.ping + Self.data + Self.emptySettingsAck + Self.pingAck + Self.ping + Self.data
        let (passed, pings) = Self.run(stream, chunk: chunk)
        #expect(passed == Self.settings + Self.data + Self.emptySettingsAck + Self.pingAck + Self.data)
        #expect(pings == [0x0102_0304_0506_0708, 0x0102_0304_0506_0708])
    }

    @Test("reads without a PING to answer pass whole, across frame and read boundaries", arguments: [1, 2, 5, 9, 10, 17, 30, 64, 4096])
    func readsWithoutPings(chunk: Int) {
        let stream = Self.settings + Self.data + Self.emptySettingsAck + Self.pingAck + Self.data + Self.ping + Self.data + Self.data
        let (passed, pings) = Self.run(stream, chunk: chunk)
        #expect(passed == Self.settings + Self.data + Self.emptySettingsAck + Self.pingAck + Self.data + Self.data + Self.data)
        #expect(pings == [0x0102_0304_0506_0708])
    }

    @Test("a read of whole frames without a PING is handed on as the same buffer")
    func wholeFramesPassWithoutCopy() {
        var scanner = HTTP2PingScanner()
        var input = ByteBuffer(bytes: Self.data + Self.settings)
        let before = input
        let (out, pings) = scanner.scan(&input, allocator: ByteBufferAllocator())
        #expect(pings.isEmpty)
        #expect(out == before)
        // The next read starts at a frame boundary: a PING in it is still found.
        var next = ByteBuffer(bytes: Self.ping)
        let (rest, found) = scanner.scan(&next, allocator: ByteBufferAllocator())
        #expect(rest == nil)
        #expect(found == [0x0102_0304_0506_0708])
    }

    @Test("a DATA payload that looks like a PING frame is not mistaken for one")
    func payloadLookingLikeAPing() {
        let data = Self.frame(type: 0x0, stream: 3, payload: Self.ping)
        let (passed, pings) = Self.run(data + Self.ping, chunk: 3)
        #expect(passed == data)
        #expect(pings.count == 1)
    }

    @Test("a malformed PING (wrong length or on a stream) is left to the HTTP/2 handler")
    func malformedPingPassesThrough() {
        let long = Self.frame(type: 0x6, payload: Array(repeating: 1, count: 9))
        let onStream = Self.frame(type: 0x6, stream: 5, payload: Array(repeating: 1, count: 8))
        let (passed, pings) = Self.run(long + onStream, chunk: 4)
        #expect(passed == long + onStream)
        #expect(pings.isEmpty)
    }

    @Test("the acknowledgement is a PING frame with the ACK flag and the same payload")
    func acknowledgement() {
        var buffer = ByteBuffer()
        HTTP2PingScanner.writeAcknowledgement(of: 0x0102_0304_0506_0708, to: &buffer)
        #expect(Array(buffer.readableBytesView) == Self.frame(type: 0x6, flags: 0x1, payload: [1, 2, 3, 4, 5, 6, 7, 8]))
    }
}
