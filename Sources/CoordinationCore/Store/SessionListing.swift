/// A session as a store that can list sessions reports it (``SessionListingStore``).
public struct SessionSummary: Sendable, Hashable {
    /// The backend's id of the session (what `revokeSession(_:)` takes).
    public var id: SessionID
    /// The TTL the server holds it with, where it says.
    public var ttl: Duration?
    /// A name the server keeps for it (Consul's session name and node), where it has one.
    public var name: String?

    public init(id: SessionID, ttl: Duration? = nil, name: String? = nil) {
        self.id = id
        self.ttl = ttl
        self.name = name
    }
}

/// An optional capability: a store whose server can list every client's sessions, for operators'
/// tools (`coordctl session ls`). etcd (`LeaseLeases`), Consul (`/v1/session/list`) and the
/// in-memory store offer it. ZooKeeper has no request that lists other clients' sessions, and etcd
/// v2 sessions live in their client.
public protocol SessionListingStore: KeyValueStore {
    /// Every session the server holds now, in no particular order.
    func listSessions() async throws(CoordinationError) -> [SessionSummary]
}
