import NIOCore

/// The result of one operation inside a multi response.
enum MultiResult: Equatable, Sendable {
    case created(path: String, stat: Stat)
    case deleted
    case set(Stat)
    case checked
    /// This operation failed, or was rolled back because another one failed (then `runtimeInconsistency`).
    case error(ZooKeeperErrorCode)
}

/// The body of a successful reply, decoded according to the op code of the request it answers
/// (replies do not name their type; the client knows it from the xid).
enum ZooKeeperResponse: Equatable, Sendable {
    case created(path: String, stat: Stat)
    /// exists and setData answer with the node's Stat.
    case stat(Stat)
    case data([UInt8]?, Stat)
    case children([String], Stat)
    case synced(path: String)
    case multi([MultiResult])
    /// delete, addWatch, setWatches, auth, ping and closeSession carry no body.
    case empty

    static func decode(for opCode: OpCode, from buffer: inout ByteBuffer) throws(JuteDecodingError) -> Self {
        switch opCode {
        case .create2, .createContainer:
            let path = try buffer.readJuteString() ?? ""
            return .created(path: path, stat: try Stat(from: &buffer))
        case .create:
            return .created(path: try buffer.readJuteString() ?? "", stat: Stat.zero)
        case .exists, .setData:
            return .stat(try Stat(from: &buffer))
        case .getData:
            let data = try buffer.readJuteBuffer()
            return .data(data, try Stat(from: &buffer))
        case .getChildren2:
            let children = try buffer.readJuteStrings() ?? []
            return .children(children, try Stat(from: &buffer))
        case .sync:
            return .synced(path: try buffer.readJuteString() ?? "")
        case .multi:
            return .multi(try decodeMultiResults(from: &buffer))
        case .delete, .addWatch, .removeWatches, .setWatches, .setWatches2, .auth, .ping, .closeSession, .check,
            .getChildren,
            .notification,
            .error:
            return .empty
        }
    }

    private static func decodeMultiResults(from buffer: inout ByteBuffer) throws(JuteDecodingError) -> [MultiResult] {
        var results: [MultiResult] = []
        while true {
            let header = try MultiHeader(from: &buffer)
            if header.done { return results }
            guard let opCode = OpCode(rawValue: header.type) else {
                throw .unexpectedValue("multi result type \(header.type)")
            }
            switch opCode {
            case .create2, .createContainer:
                let path = try buffer.readJuteString() ?? ""
                results.append(.created(path: path, stat: try Stat(from: &buffer)))
            case .create:
                results.append(.created(path: try buffer.readJuteString() ?? "", stat: .zero))
            case .delete:
                results.append(.deleted)
            case .setData:
                results.append(.set(try Stat(from: &buffer)))
            case .check:
                results.append(.checked)
            case .error:
                results.append(.error(ZooKeeperErrorCode(rawValue: try buffer.readJuteInt())))
            default:
                throw .unexpectedValue("multi result type \(header.type)")
            }
        }
    }
}

extension Stat {
    /// For results that carry no Stat (a plain create inside an old-style multi).
    static let zero = Stat(
        czxid: 0, mzxid: 0, ctime: 0, mtime: 0, version: 0, cversion: 0, aversion: 0,
        ephemeralOwner: 0, dataLength: 0, numChildren: 0, pzxid: 0
    )
}
