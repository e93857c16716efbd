import NIOCore

/// A notification the server pushes with xid -1 (`WatcherEvent`). Standard watches fire once;
/// persistent and persistent-recursive ones (addWatch) stay until removed or the session ends.
struct WatcherEvent: Equatable, Sendable {
    /// `Watcher.Event.EventType`.
    enum EventType: Int32, Sendable {
        case none = -1
        case nodeCreated = 1
        case nodeDeleted = 2
        case nodeDataChanged = 3
        case nodeChildrenChanged = 4
        case dataWatchRemoved = 5
        case childWatchRemoved = 6
        case persistentWatchRemoved = 7
    }

    /// `Watcher.Event.KeeperState` (only sent by the server in events of type none).
    enum KeeperState: Int32, Sendable {
        case unknown = -1
        case disconnected = 0
        case syncConnected = 3
        case authFailed = 4
        case connectedReadOnly = 5
        case saslAuthenticated = 6
        case expired = -112
        case closed = 7
    }

    var type: EventType
    var state: KeeperState
    var path: String

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteInt(type.rawValue)
        buffer.writeJuteInt(state.rawValue)
        buffer.writeJuteString(path)
    }

    init(type: EventType, state: KeeperState, path: String) {
        self.type = type
        self.state = state
        self.path = path
    }

    init(from buffer: inout ByteBuffer) throws(JuteDecodingError) {
        let rawType = try buffer.readJuteInt()
        let rawState = try buffer.readJuteInt()
        guard let type = EventType(rawValue: rawType) else { throw .unexpectedValue("watcher event type \(rawType)") }
        guard let state = KeeperState(rawValue: rawState) else { throw .unexpectedValue("keeper state \(rawState)") }
        self.type = type
        self.state = state
        path = try buffer.readJuteString() ?? ""
    }
}
