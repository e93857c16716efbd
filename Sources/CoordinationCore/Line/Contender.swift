/// What a contender is for; backends that encode it in the node name (ZooKeeper, after Curator)
/// use ``name``, the others ignore it.
public struct ContenderRole: Hashable, Sendable, CustomStringConvertible {
    /// The marker in the node name: Curator's `lock`, `latch`, `lease`.
    public let name: String

    public init(name: String) { self.name = name }

    /// A mutex contender (Curator `InterProcessMutex`: `-lock-`).
    public static let lock = ContenderRole(name: "lock")
    /// A leadership candidate (Curator `LeaderLatch`: `-latch-`).
    public static let leader = ContenderRole(name: "latch")
    /// A semaphore contender (Curator `InterProcessSemaphoreV2`: `-lease-`).
    public static let semaphore = ContenderRole(name: "lease")

    public var description: String { name }
}

/// A session-bound key in a queue under a prefix; the queue is ordered by ``order``.
public struct Contender: Sendable, Hashable {
    /// The contender's key.
    public var key: Key
    /// Its ordering number: create revision (etcd, memory), sequence number (ZooKeeper),
    /// CreateIndex (Consul), createdIndex (etcd v2). Lower is earlier in line.
    public var order: Revision
    /// The revision its key was created at: tells this contender from a later one under the same key.
    public var createRevision: Revision
    /// Its revision for guarded updates and removal (modify revision).
    public var modifyRevision: Revision
    /// The session it is bound to, where the backend reports it.
    public var session: SessionID?
    /// The value it carries (a leader's proclaimed value, for example).
    public var value: [UInt8]

    @_spi(Backend) public init(
        key: Key,
        order: Revision,
        createRevision: Revision,
        modifyRevision: Revision,
        session: SessionID?,
        value: [UInt8]
    ) {
        self.key = key
        self.order = order
        self.createRevision = createRevision
        self.modifyRevision = modifyRevision
        self.session = session
        self.value = value
    }

    /// Builds a contender from a stored entry.
    @_spi(Backend) public init(entry: Entry) {
        self.init(
            key: entry.key,
            order: entry.createRevision,
            createRevision: entry.createRevision,
            modifyRevision: entry.modifyRevision,
            session: entry.session,
            value: entry.value
        )
    }

    /// The fencing token a grant to this contender carries.
    public var token: FencingToken { FencingToken(order.value) }
}
