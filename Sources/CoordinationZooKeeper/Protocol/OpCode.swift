/// Request types (`ZooDefs.OpCode` in ZooKeeper 3.8). Only those this client sends are listed.
enum OpCode: Int32, Sendable {
    case notification = 0
    case create = 1
    case delete = 2
    case exists = 3
    case getData = 4
    case setData = 5
    case getChildren = 8
    case sync = 9
    case ping = 11
    case getChildren2 = 12
    case check = 13
    case multi = 14
    case create2 = 15
    case removeWatches = 18
    case createContainer = 19
    /// AuthPacket (`addauth`), sent with xid ``ReservedXid/auth``.
    case auth = 100
    case setWatches = 101
    case setWatches2 = 105
    case addWatch = 106
    case closeSession = -11
    /// The type of a failed operation in a multi response.
    case error = -1
}

/// Transaction ids the protocol reserves (`ClientCnxn` in ZooKeeper 3.8); requests use xids ≥ 1.
enum ReservedXid {
    static let notification: Int32 = -1
    static let ping: Int32 = -2
    static let auth: Int32 = -4
    static let setWatches: Int32 = -8
}
