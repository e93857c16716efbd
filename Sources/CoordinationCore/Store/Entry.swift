/// A key with its value and the revisions that describe its history.
public struct Entry: Hashable, Sendable {
    public var key: Key
    public var value: [UInt8]
    /// The revision at which the key was created (etcd create_revision, ZooKeeper czxid, Consul CreateIndex).
    public var createRevision: Revision
    /// The revision of the last change (etcd mod_revision, ZooKeeper mzxid, Consul ModifyIndex).
    public var modifyRevision: Revision
    /// The session the key is bound to, if any: the key disappears when that session ends.
    public var session: SessionID?

    @_spi(Backend) public init(
        key: Key, value: [UInt8], createRevision: Revision, modifyRevision: Revision, session: SessionID? = nil
    ) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modifyRevision = modifyRevision
        self.session = session
    }

    /// The value decoded as UTF-8 (invalid sequences repaired).
    public var stringValue: String { String(decoding: value, as: UTF8.self) }
}

/// The identity of a session on its backend (etcd lease id in hex, ZooKeeper session id in hex,
/// Consul session UUID, a generated UUID for etcd v2 and memory).
public struct SessionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static func < (lhs: SessionID, rhs: SessionID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { rawValue }
}
