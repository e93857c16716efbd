import NIOCore

/// Precedes every request after the handshake.
struct RequestHeader: Equatable, Sendable {
    var xid: Int32
    var type: Int32

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(xid)
        buffer.writeJuteInt(type)
    }

    init(xid: Int32, type: Int32) {
        self.xid = xid
        self.type = type
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        xid = try buffer.readJuteInt()
        type = try buffer.readJuteInt()
    }
}

/// Precedes every reply and notification after the handshake. `zxid` is the server's last
/// committed transaction when it answered; `err` is a `ZooKeeperErrorCode`.
struct ReplyHeader: Equatable, Sendable {
    var xid: Int32
    var zxid: Int64
    var err: Int32

    static let encodedSize = 16

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(xid)
        buffer.writeJuteLong(zxid)
        buffer.writeJuteInt(err)
    }

    init(xid: Int32, zxid: Int64, err: Int32) {
        self.xid = xid
        self.zxid = zxid
        self.err = err
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        xid = try buffer.readJuteInt()
        zxid = try buffer.readJuteLong()
        err = try buffer.readJuteInt()
    }
}

/// The header of each operation and result inside a multi (`MultiHeader`). The list ends with a
/// header of type -1, done true, err -1.
struct MultiHeader: Equatable, Sendable {
    var type: Int32
    var done: Bool
    var err: Int32

    static let end = MultiHeader(type: -1, done: true, err: -1)

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(type)
        buffer.writeJuteBool(done)
        buffer.writeJuteInt(err)
    }

    init(type: Int32, done: Bool, err: Int32) {
        self.type = type
        self.done = done
        self.err = err
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        type = try buffer.readJuteInt()
        done = try buffer.readJuteBool()
        err = try buffer.readJuteInt()
    }
}
