import NIOCore

/// The first frame a client sends (`ConnectRequest`, followed by the `readOnly` flag that
/// `ClientCnxnSocket` appends). A new session has id 0 and an empty password; a reconnect sends the
/// session's id and password and the last zxid seen, so the server refuses to go back in time.
struct ConnectRequest: Equatable, Sendable {
    var protocolVersion: Int32 = 0
    var lastZxidSeen: Int64
    /// The session timeout the client asks for, in milliseconds.
    var timeoutMilliseconds: Int32
    var sessionID: Int64
    var password: [UInt8]
    var readOnly: Bool = false

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(protocolVersion)
        buffer.writeJuteLong(lastZxidSeen)
        buffer.writeJuteInt(timeoutMilliseconds)
        buffer.writeJuteLong(sessionID)
        buffer.writeJuteBuffer(password)
        buffer.writeJuteBool(readOnly)
    }

    init(
        protocolVersion: Int32 = 0, lastZxidSeen: Int64, timeoutMilliseconds: Int32, sessionID: Int64,
        password: [UInt8], readOnly: Bool = false
    ) {
        self.protocolVersion = protocolVersion
        self.lastZxidSeen = lastZxidSeen
        self.timeoutMilliseconds = timeoutMilliseconds
        self.sessionID = sessionID
        self.password = password
        self.readOnly = readOnly
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        protocolVersion = try buffer.readJuteInt()
        lastZxidSeen = try buffer.readJuteLong()
        timeoutMilliseconds = try buffer.readJuteInt()
        sessionID = try buffer.readJuteLong()
        password = try buffer.readJuteBuffer() ?? []
        readOnly = buffer.readableBytes > 0 ? try buffer.readJuteBool() : false
    }
}

/// The server's answer to a `ConnectRequest`. A negotiated timeout ≤ 0 means the session asked
/// for has expired (the server then closes the connection).
struct ConnectResponse: Equatable, Sendable {
    var protocolVersion: Int32
    var timeoutMilliseconds: Int32
    var sessionID: Int64
    var password: [UInt8]
    /// Servers before 3.4 omit the flag; it is then false.
    var readOnly: Bool

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(protocolVersion)
        buffer.writeJuteInt(timeoutMilliseconds)
        buffer.writeJuteLong(sessionID)
        buffer.writeJuteBuffer(password)
        buffer.writeJuteBool(readOnly)
    }

    init(
        protocolVersion: Int32 = 0, timeoutMilliseconds: Int32, sessionID: Int64, password: [UInt8],
        readOnly: Bool = false
    ) {
        self.protocolVersion = protocolVersion
        self.timeoutMilliseconds = timeoutMilliseconds
        self.sessionID = sessionID
        self.password = password
        self.readOnly = readOnly
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        protocolVersion = try buffer.readJuteInt()
        timeoutMilliseconds = try buffer.readJuteInt()
        sessionID = try buffer.readJuteLong()
        password = try buffer.readJuteBuffer() ?? []
        readOnly = buffer.readableBytes > 0 ? try buffer.readJuteBool() : false
    }
}
