import NIOCore

/// One operation inside a multi request (`MultiOperationRecord`): all apply atomically or none.
enum MultiOperation: Equatable, Sendable {
    case create(path: String, data: [UInt8]?, acl: [ACL], mode: CreateMode)
    case delete(path: String, version: Int32)
    case setData(path: String, data: [UInt8]?, version: Int32)
    /// Fails the whole multi unless the node's version is `version` (`CheckVersionRequest`).
    case check(path: String, version: Int32)

    var opCode: OpCode {
        switch self {
        case .create(_, _, _, let mode): mode == .container ? .createContainer : .create2
        case .delete: .delete
        case .setData: .setData
        case .check: .check
        }
    }
}

/// The state of a client's watches a reconnect re-registers (`SetWatches` / `SetWatches2`), so
/// that changes made while disconnected after `relativeZxid` still fire.
struct WatchRegistrations: Equatable, Sendable {
    var relativeZxid: Int64
    var data: [String] = []
    var exist: [String] = []
    var child: [String] = []
    var persistent: [String] = []
    var persistentRecursive: [String] = []

    /// Persistent watches need `setWatches2` (ZooKeeper ≥ 3.6); without them the older op serves.
    var opCode: OpCode { persistent.isEmpty && persistentRecursive.isEmpty ? .setWatches : .setWatches2 }
}

/// A request after the handshake: its op code and body. The header (xid, type) is written by
/// ``encode(xid:into:)``.
enum ZooKeeperRequest: Equatable, Sendable {
    case create(path: String, data: [UInt8]?, acl: [ACL], mode: CreateMode)
    case delete(path: String, version: Int32)
    case exists(path: String, watch: Bool)
    case getData(path: String, watch: Bool)
    case setData(path: String, data: [UInt8]?, version: Int32)
    case getChildren2(path: String, watch: Bool)
    case sync(path: String)
    case multi([MultiOperation])
    case addWatch(path: String, mode: AddWatchMode)
    /// RemoveWatches (op 18) with WatcherType `any` (3): every watch this session has on `path`.
    case removeWatches(path: String)
    case setWatches(WatchRegistrations)
    /// AuthPacket: adds `credential` under `scheme` (e.g. `digest`, `user:password`) to the
    /// connection's identities. Sent with xid ``ReservedXid/auth`` after every handshake.
    case auth(scheme: String, credential: [UInt8])
    case ping
    case closeSession

    /// "Any version" for delete, setData and check.
    static let anyVersion: Int32 = -1

    var opCode: OpCode {
        switch self {
        // Create2 (op 15) answers with the new node's Stat, so its czxid is known at once;
        // containers have an op of their own with the same request and response records.
        case .create(_, _, _, let mode): mode == .container ? .createContainer : .create2
        case .delete: .delete
        case .exists: .exists
        case .getData: .getData
        case .setData: .setData
        case .getChildren2: .getChildren2
        case .sync: .sync
        case .multi: .multi
        case .addWatch: .addWatch
        case .removeWatches: .removeWatches
        case .setWatches(let registrations): registrations.opCode
        case .auth: .auth
        case .ping: .ping
        case .closeSession: .closeSession
        }
    }

    /// Writes header and body (without the frame's length prefix).
    func encode(xid: Int32, into buffer: inout ByteBuffer) {
        RequestHeader(xid: xid, type: opCode.rawValue).encode(into: &buffer)
        switch self {
        case .create(let path, let data, let acl, let mode):
            Self.encodeCreate(path: path, data: data, acl: acl, mode: mode, into: &buffer)
        case .delete(let path, let version):
            buffer.writeJuteString(path)
            buffer.writeJuteInt(version)
        case .exists(let path, let watch), .getData(let path, let watch), .getChildren2(let path, let watch):
            buffer.writeJuteString(path)
            buffer.writeJuteBool(watch)
        case .setData(let path, let data, let version):
            buffer.writeJuteString(path)
            buffer.writeJuteBuffer(data)
            buffer.writeJuteInt(version)
        case .sync(let path):
            buffer.writeJuteString(path)
        case .multi(let operations):
            for operation in operations {
                MultiHeader(type: operation.opCode.rawValue, done: false, err: -1).encode(into: &buffer)
                switch operation {
                case .create(let path, let data, let acl, let mode):
                    Self.encodeCreate(path: path, data: data, acl: acl, mode: mode, into: &buffer)
                case .delete(let path, let version), .check(let path, let version):
                    buffer.writeJuteString(path)
                    buffer.writeJuteInt(version)
                case .setData(let path, let data, let version):
                    buffer.writeJuteString(path)
                    buffer.writeJuteBuffer(data)
                    buffer.writeJuteInt(version)
                }
            }
            MultiHeader.end.encode(into: &buffer)
        case .addWatch(let path, let mode):
            buffer.writeJuteString(path)
            buffer.writeJuteInt(mode.rawValue)
        case .removeWatches(let path):
            buffer.writeJuteString(path)
            buffer.writeJuteInt(3)
        case .setWatches(let registrations):
            buffer.writeJuteLong(registrations.relativeZxid)
            buffer.writeJuteStrings(registrations.data)
            buffer.writeJuteStrings(registrations.exist)
            buffer.writeJuteStrings(registrations.child)
            if registrations.opCode == .setWatches2 {
                buffer.writeJuteStrings(registrations.persistent)
                buffer.writeJuteStrings(registrations.persistentRecursive)
            }
        case .auth(let scheme, let credential):
            buffer.writeJuteInt(0)  // AuthPacket.type, unused by the server
            buffer.writeJuteString(scheme)
            buffer.writeJuteBuffer(credential)
        case .ping, .closeSession:
            break
        }
    }

    private static func encodeCreate(
        path: String, data: [UInt8]?, acl: [ACL], mode: CreateMode, into buffer: inout ByteBuffer
    ) {
        buffer.writeJuteString(path)
        buffer.writeJuteBuffer(data)
        buffer.writeJuteInt(Int32(acl.count))
        for entry in acl { entry.encode(into: &buffer) }
        buffer.writeJuteInt(mode.rawValue)
    }
}
