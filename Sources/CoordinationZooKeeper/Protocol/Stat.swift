import NIOCore

/// A znode's metadata (`org.apache.zookeeper.data.Stat`): zxids order changes store-wide, versions
/// count changes of this node. `czxid` / `mzxid` are the create and modify revisions of an entry.
struct Stat: Equatable, Sendable {
    var czxid: Int64
    var mzxid: Int64
    var ctime: Int64
    var mtime: Int64
    var version: Int32
    var cversion: Int32
    var aversion: Int32
    /// The session that owns an ephemeral node, 0 for a persistent one.
    var ephemeralOwner: Int64
    var dataLength: Int32
    var numChildren: Int32
    var pzxid: Int64

    static let encodedSize = 68

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteLong(czxid)
        buffer.writeJuteLong(mzxid)
        buffer.writeJuteLong(ctime)
        buffer.writeJuteLong(mtime)
        buffer.writeJuteInt(version)
        buffer.writeJuteInt(cversion)
        buffer.writeJuteInt(aversion)
        buffer.writeJuteLong(ephemeralOwner)
        buffer.writeJuteInt(dataLength)
        buffer.writeJuteInt(numChildren)
        buffer.writeJuteLong(pzxid)
    }

    init(
        czxid: Int64, mzxid: Int64, ctime: Int64, mtime: Int64, version: Int32, cversion: Int32,
        aversion: Int32, ephemeralOwner: Int64, dataLength: Int32, numChildren: Int32, pzxid: Int64
    ) {
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeralOwner = ephemeralOwner
        self.dataLength = dataLength
        self.numChildren = numChildren
        self.pzxid = pzxid
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw .truncated(needed: Self.encodedSize, available: buffer.readableBytes)
        }
        czxid = try buffer.readJuteLong()
        mzxid = try buffer.readJuteLong()
        ctime = try buffer.readJuteLong()
        mtime = try buffer.readJuteLong()
        version = try buffer.readJuteInt()
        cversion = try buffer.readJuteInt()
        aversion = try buffer.readJuteInt()
        ephemeralOwner = try buffer.readJuteLong()
        dataLength = try buffer.readJuteInt()
        numChildren = try buffer.readJuteInt()
        pzxid = try buffer.readJuteLong()
    }
}
