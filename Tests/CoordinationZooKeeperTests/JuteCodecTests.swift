import CoordinationCore
import NIOCore
import Testing

@testable import CoordinationZooKeeper

private func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

private func encoded(_ body: (inout ByteBuffer) -> Void) -> [UInt8] {
    var buffer = ByteBuffer()
    body(&buffer)
    return bytes(buffer)
}

@Suite("ZooKeeper jute codec")
struct JuteCodecTests {
    @Test("primitives are big-endian; buffers and strings carry a 4-byte length, -1 for null")
    func primitives() throws {
        #expect(encoded { $0.writeJuteInt(0x0102_0304) } == [1, 2, 3, 4])
        #expect(encoded { $0.writeJuteLong(-2) } == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])
        #expect(encoded { $0.writeJuteBool(true) } == [1])
        #expect(encoded { $0.writeJuteString("/a") } == [0, 0, 0, 2, 0x2F, 0x61])
        #expect(encoded { $0.writeJuteString(nil) } == [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(encoded { $0.writeJuteBuffer([9]) } == [0, 0, 0, 1, 9])
        #expect(
            encoded { $0.writeJuteStrings(["x", "yz"]) } == [0, 0, 0, 2, 0, 0, 0, 1, 0x78, 0, 0, 0, 2, 0x79, 0x7A])

        var buffer = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        #expect(try buffer.readJuteString() == nil)
        #expect(try buffer.readJuteBuffer() == [])
    }

    @Test("a new session's ConnectRequest is the classic 45-byte handshake")
    func connectRequestBytes() throws {
        let request = ConnectRequest(
            lastZxidSeen: 0, timeoutMilliseconds: 30_000, sessionID: 0, password: [UInt8](repeating: 0, count: 16))
        var buffer = ByteBuffer()
        ZooKeeperFrameEncoder.frame(into: &buffer) { request.encode(into: &$0) }
        let expected: [UInt8] =
            [0, 0, 0, 45]  // frame length
            + [0, 0, 0, 0]  // protocol version
            + [UInt8](repeating: 0, count: 8)  // last zxid seen
            + [0, 0, 0x75, 0x30]  // 30000 ms
            + [UInt8](repeating: 0, count: 8)  // session id
            + [0, 0, 0, 16] + [UInt8](repeating: 0, count: 16)  // password
            + [0]  // read-only
        #expect(bytes(buffer) == expected)

        var decoder = ZooKeeperFrameDecoder()
        decoder.append(buffer)
        var frame = try #require(try decoder.nextFrame())
        #expect(try ConnectRequest(from: &frame) == request)
    }

    @Test("ConnectResponse round-trips, and a response without the read-only byte decodes")
    func connectResponse() throws {
        let response = ConnectResponse(
            timeoutMilliseconds: 4000, sessionID: 0x1234_5678_9ABC, password: Array(0..<16), readOnly: false)
        var buffer = ByteBuffer()
        response.encode(into: &buffer)
        #expect(buffer.readableBytes == 4 + 4 + 8 + 4 + 16 + 1)
        var copy = buffer
        #expect(try ConnectResponse(from: &copy) == response)
        var old = buffer.getSlice(at: 0, length: buffer.readableBytes - 1)!
        #expect(try ConnectResponse(from: &old) == response)
    }

    @Test("a ping is header only: xid -2, op 11")
    func ping() {
        var buffer = ByteBuffer()
        ZooKeeperRequest.ping.encode(xid: ReservedXid.ping, into: &buffer)
        #expect(bytes(buffer) == [0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 0, 11])
    }

    @Test("create goes out as create2 (op 15) with world:anyone ACL; container as op 19")
    func createBytes() {
        var buffer = ByteBuffer()
        ZooKeeperRequest.create(path: "/a", data: [7], acl: ACL.openUnsafe, mode: .ephemeralSequential).encode(
            xid: 1, into: &buffer)
        let expected: [UInt8] =
            [0, 0, 0, 1, 0, 0, 0, 15]  // header
            + [0, 0, 0, 2, 0x2F, 0x61]  // path
            + [0, 0, 0, 1, 7]  // data
            + [0, 0, 0, 1]  // one ACL
            + [0, 0, 0, 31] + [0, 0, 0, 5] + Array("world".utf8) + [0, 0, 0, 6] + Array("anyone".utf8)
            + [0, 0, 0, 3]  // ephemeral sequential
        #expect(bytes(buffer) == expected)
        #expect(
            ZooKeeperRequest.create(path: "/c", data: [], acl: ACL.openUnsafe, mode: .container).opCode.rawValue == 19)
    }

    @Test("op codes, create modes and error codes match ZooKeeper 3.8")
    func numbers() {
        let ops: [(OpCode, Int32)] = [
            (.create, 1), (.delete, 2), (.exists, 3), (.getData, 4), (.setData, 5), (.sync, 9), (.ping, 11),
            (.getChildren2, 12), (.check, 13), (.multi, 14), (.create2, 15), (.createContainer, 19),
            (.setWatches, 101), (.setWatches2, 105), (.addWatch, 106), (.closeSession, -11), (.error, -1),
        ]
        for (op, value) in ops { #expect(op.rawValue == value) }
        #expect(CreateMode.allCases.map(\.rawValue) == [0, 1, 2, 3, 4])
        #expect(AddWatchMode.persistentRecursive.rawValue == 1)
        let errors: [(ZooKeeperErrorCode, Int32)] = [
            (.noNode, -101), (.nodeExists, -110), (.badVersion, -103), (.notEmpty, -111),
            (.sessionExpired, -112), (.sessionMoved, -118), (.connectionLoss, -4), (.noAuth, -102),
        ]
        for (code, value) in errors { #expect(code.rawValue == value) }
        #expect(ZooKeeperErrorCode.noNode.coordinationCode == .keyNotFound)
        #expect(ZooKeeperErrorCode.nodeExists.coordinationCode == .keyExists)
        #expect(ZooKeeperErrorCode.badVersion.coordinationCode == .revisionMismatch)
        #expect(ZooKeeperErrorCode(rawValue: -999).description == "error -999")
    }

    static let stat = Stat(
        czxid: 5, mzxid: 9, ctime: 1_700_000_000_000, mtime: 1_700_000_000_500, version: 2, cversion: 1,
        aversion: 0, ephemeralOwner: 0x77, dataLength: 3, numChildren: 0, pzxid: 5
    )

    @Test("responses decode by the op code of their request")
    func responses() throws {
        var buffer = ByteBuffer()
        buffer.writeJuteString("/lock-0000000007")
        Self.stat.encode(into: &buffer)
        #expect(
            try ZooKeeperResponse.decode(for: .create2, from: &buffer)
                == .created(path: "/lock-0000000007", stat: Self.stat))
        #expect(buffer.readableBytes == 0)

        buffer.clear()
        buffer.writeJuteBuffer([1, 2, 3])
        Self.stat.encode(into: &buffer)
        #expect(try ZooKeeperResponse.decode(for: .getData, from: &buffer) == .data([1, 2, 3], Self.stat))

        buffer.clear()
        buffer.writeJuteStrings(["a", "b"])
        Self.stat.encode(into: &buffer)
        #expect(try ZooKeeperResponse.decode(for: .getChildren2, from: &buffer) == .children(["a", "b"], Self.stat))

        buffer.clear()
        Self.stat.encode(into: &buffer)
        #expect(try ZooKeeperResponse.decode(for: .exists, from: &buffer) == .stat(Self.stat))
    }

    @Test("multi: each op behind a MultiHeader, ended by (-1, true, -1); results likewise")
    func multi() throws {
        var buffer = ByteBuffer()
        ZooKeeperRequest.multi([.check(path: "/a", version: 3), .delete(path: "/b", version: -1)]).encode(
            xid: 4, into: &buffer)
        let expected: [UInt8] =
            [0, 0, 0, 4, 0, 0, 0, 14]
            + [0, 0, 0, 13, 0, 0xFF, 0xFF, 0xFF, 0xFF] + [0, 0, 0, 2, 0x2F, 0x61, 0, 0, 0, 3]
            + [0, 0, 0, 2, 0, 0xFF, 0xFF, 0xFF, 0xFF] + [0, 0, 0, 2, 0x2F, 0x62, 0xFF, 0xFF, 0xFF, 0xFF]
            + [0xFF, 0xFF, 0xFF, 0xFF, 1, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(bytes(buffer) == expected)

        // A failed transaction: the failing op's error, the others rolled back.
        var reply = ByteBuffer()
        MultiHeader(type: -1, done: false, err: -103).encode(into: &reply)
        reply.writeJuteInt(-103)
        MultiHeader(type: -1, done: false, err: -2).encode(into: &reply)
        reply.writeJuteInt(-2)
        MultiHeader.end.encode(into: &reply)
        #expect(
            try ZooKeeperResponse.decode(for: .multi, from: &reply)
                == .multi([.error(.badVersion), .error(.runtimeInconsistency)]))

        var success = ByteBuffer()
        MultiHeader(type: 15, done: false, err: 0).encode(into: &success)
        success.writeJuteString("/n")
        Self.stat.encode(into: &success)
        MultiHeader(type: 5, done: false, err: 0).encode(into: &success)
        Self.stat.encode(into: &success)
        MultiHeader(type: 13, done: false, err: 0).encode(into: &success)
        MultiHeader.end.encode(into: &success)
        #expect(
            try ZooKeeperResponse.decode(for: .multi, from: &success)
                == .multi([.created(path: "/n", stat: Self.stat), .set(Self.stat), .checked]))

        var unknown = ByteBuffer()
        MultiHeader(type: 77, done: false, err: 0).encode(into: &unknown)
        #expect(throws: JuteDecodingError.unexpectedValue("multi result type 77")) {
            try ZooKeeperResponse.decode(for: .multi, from: &unknown)
        }
    }

    @Test("addWatch and setWatches: setWatches2 (op 105) only when persistent watches exist")
    func watchRequests() throws {
        var buffer = ByteBuffer()
        ZooKeeperRequest.addWatch(path: "/svc", mode: .persistentRecursive).encode(xid: 2, into: &buffer)
        #expect(bytes(buffer) == [0, 0, 0, 2, 0, 0, 0, 106, 0, 0, 0, 4] + Array("/svc".utf8) + [0, 0, 0, 1])

        buffer.clear()
        ZooKeeperRequest.setWatches(WatchRegistrations(relativeZxid: 8, data: ["/d"])).encode(
            xid: ReservedXid.setWatches, into: &buffer)
        #expect(
            bytes(buffer) == [0xFF, 0xFF, 0xFF, 0xF8, 0, 0, 0, 101] + [0, 0, 0, 0, 0, 0, 0, 8] + [
                0, 0, 0, 1, 0, 0, 0, 2, 0x2F, 0x64,
            ] + [0, 0, 0, 0] + [0, 0, 0, 0])

        buffer.clear()
        let registrations = WatchRegistrations(relativeZxid: 8, persistentRecursive: ["/svc"])
        ZooKeeperRequest.setWatches(registrations).encode(xid: ReservedXid.setWatches, into: &buffer)
        var header = try RequestHeader(from: &buffer)
        #expect(header.type == 105)
        #expect(buffer.readableBytes == 8 + 4 * 4 + 4 + 4 + 4)
        header.xid = 0
    }

    @Test("a watcher event decodes; an unknown event type is a typed error")
    func watcherEvent() throws {
        var buffer = ByteBuffer()
        ReplyHeader(xid: -1, zxid: -1, err: 0).encode(into: &buffer)
        WatcherEvent(type: .nodeDeleted, state: .syncConnected, path: "/x").encode(into: &buffer)
        #expect(try ReplyHeader(from: &buffer) == ReplyHeader(xid: -1, zxid: -1, err: 0))
        #expect(try WatcherEvent(from: &buffer) == WatcherEvent(type: .nodeDeleted, state: .syncConnected, path: "/x"))

        var bad = ByteBuffer()
        bad.writeJuteInt(42)
        bad.writeJuteInt(3)
        bad.writeJuteString("/x")
        #expect(throws: JuteDecodingError.unexpectedValue("watcher event type 42")) { try WatcherEvent(from: &bad) }
    }
}

@Suite("ZooKeeper framing and hostile input")
struct ZooKeeperFramingTests {
    @Test("frames arrive byte by byte and back to back")
    func partialFrames() throws {
        var wire = ByteBuffer()
        ZooKeeperFrameEncoder.frame(into: &wire) { ZooKeeperRequest.ping.encode(xid: -2, into: &$0) }
        ZooKeeperFrameEncoder.frame(into: &wire) { ZooKeeperRequest.sync(path: "/").encode(xid: 1, into: &$0) }
        var decoder = ZooKeeperFrameDecoder()
        var frames: [ByteBuffer] = []
        for byte in wire.readableBytesView {
            decoder.append(ByteBuffer(bytes: [byte]))
            while let frame = try decoder.nextFrame() { frames.append(frame) }
        }
        #expect(frames.count == 2)
        #expect(frames.map(\.readableBytes) == [8, 8 + 4 + 1])
    }

    @Test("a negative or oversized frame length is a typed error, never an allocation")
    func badLengths() {
        var decoder = ZooKeeperFrameDecoder(maximumFrameLength: 1024)
        decoder.append(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xF0]))
        #expect(throws: JuteDecodingError.negativeLength(-16)) { try decoder.nextFrame() }

        var big = ZooKeeperFrameDecoder(maximumFrameLength: 1024)
        big.append(ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF]))
        #expect(throws: JuteDecodingError.tooLong(Int(Int32.max), limit: 1024)) { try big.nextFrame() }
    }

    @Test("lengths inside a record that exceed the frame, or are below -1, fail typed")
    func badFieldLengths() {
        var string = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0x41])
        #expect(throws: JuteDecodingError.truncated(needed: Int(Int32.max), available: 1)) {
            try string.readJuteString()
        }

        var negative = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFE])
        #expect(throws: JuteDecodingError.negativeLength(-2)) { try negative.readJuteBuffer() }

        // A vector claiming a billion strings in a 4-byte body.
        var vector = ByteBuffer(bytes: [0x40, 0, 0, 0, 0, 0, 0, 0])
        #expect(throws: JuteDecodingError.self) { try vector.readJuteStrings() }

        var utf8 = ByteBuffer(bytes: [0, 0, 0, 1, 0xFF])
        #expect(throws: JuteDecodingError.invalidUTF8) { try utf8.readJuteString() }
    }

    @Test("every truncation of valid replies fails typed, never crashes")
    func truncations() throws {
        var full = ByteBuffer()
        full.writeJuteBuffer([1, 2, 3])
        JuteCodecTests.stat.encode(into: &full)
        for length in 0..<full.readableBytes {
            var slice = full.getSlice(at: 0, length: length)!
            #expect(throws: JuteDecodingError.self) { try ZooKeeperResponse.decode(for: .getData, from: &slice) }
        }
        var multi = ByteBuffer()
        MultiHeader(type: 15, done: false, err: 0).encode(into: &multi)
        multi.writeJuteString("/n")
        JuteCodecTests.stat.encode(into: &multi)
        MultiHeader.end.encode(into: &multi)
        for length in 0..<multi.readableBytes {
            var slice = multi.getSlice(at: 0, length: length)!
            #expect(throws: JuteDecodingError.self) { try ZooKeeperResponse.decode(for: .multi, from: &slice) }
        }
    }
}
