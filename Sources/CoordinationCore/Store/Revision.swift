/// A backend's own monotonic number for a change: etcd's revision, ZooKeeper's zxid, Consul's
/// index, etcd v2's index, the in-memory store's revision.
///
/// Revisions are comparable within one store; they mean nothing across stores.
public struct Revision: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func < (lhs: Revision, rhs: Revision) -> Bool { lhs.value < rhs.value }

    public var description: String { String(value) }
}

/// A number that grows with every grant of a lock, permit or leadership.
///
/// Hand it to the resource you guard and have the resource reject any request carrying a smaller
/// token than one it has already seen: that keeps a paused former holder from doing damage after
/// its grant was lost. On every backend it is the contender's ordering number (create revision,
/// sequence number, CreateIndex, createdIndex).
public struct FencingToken: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func < (lhs: FencingToken, rhs: FencingToken) -> Bool { lhs.value < rhs.value }

    public var description: String { String(value) }
}
