import NIOCore

/// One access-control entry (`org.apache.zookeeper.data.ACL` with its `Id`).
struct ACL: Equatable, Sendable {
    /// `ZooDefs.Perms`: read 1, write 2, create 4, delete 8, admin 16.
    var permissions: Int32
    var scheme: String
    var id: String

    static let allPermissions: Int32 = 31
    static let read: Int32 = 1

    /// world:anyone with every permission (`ZooDefs.Ids.OPEN_ACL_UNSAFE`), what Curator and kazoo
    /// use by default.
    static let openUnsafe = [ACL(permissions: allPermissions, scheme: "world", id: "anyone")]

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(permissions)
        buffer.writeJuteString(scheme)
        buffer.writeJuteString(id)
    }

    init(permissions: Int32, scheme: String, id: String) {
        self.permissions = permissions
        self.scheme = scheme
        self.id = id
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        permissions = try buffer.readJuteInt()
        scheme = try buffer.readJuteString() ?? ""
        id = try buffer.readJuteString() ?? ""
    }
}
