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

    public init(
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
    public init(entry: Entry) {
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

/// Where a contender stands in its line at one moment: how many are ahead, and which one is just
/// ahead. This is all a waiter needs; reading it can be cheaper than reading the whole line
/// (ZooKeeper: the children's names alone).
public struct LinePlace: Sendable, Hashable {
    /// The contender just ahead, as much as a waiter needs to wait for it to go.
    public struct Ahead: Sendable, Hashable {
        public var key: Key
        /// Its create revision, when the line read told it; `nil` when the key alone names one
        /// incarnation (ZooKeeper's sequential names are never reused).
        public var createRevision: Revision?
        /// Its session, when that matters to tell it gone (a shared key released, not deleted).
        public var session: SessionID?

        public init(key: Key, createRevision: Revision?, session: SessionID?) {
            self.key = key
            self.createRevision = createRevision
            self.session = session
        }

        public init(_ contender: Contender) {
            self.init(key: contender.key, createRevision: contender.createRevision, session: contender.session)
        }
    }

    /// How many contenders are ahead (0: first in line). A backend that reads only the contenders
    /// just ahead (etcd) may say 2 for "two or more": recipes only tell first, second and further
    /// back.
    public var index: Int
    /// The contender just ahead (`nil` when first).
    public var predecessor: Ahead?

    public init(index: Int, predecessor: Ahead?) {
        self.index = index
        self.predecessor = predecessor
    }

    /// The place of `key` in `line` (first in line first), or `nil` if it is not in it.
    public static func of(_ key: Key, in line: [Contender]) -> LinePlace? {
        guard let index = line.firstIndex(where: { $0.key == key }) else { return nil }
        return LinePlace(index: index, predecessor: index > 0 ? Ahead(line[index - 1]) : nil)
    }
}

/// A contender just created, and where it stands right after.
public struct LinePosition: Sendable, Hashable {
    public var contender: Contender
    /// The first in line right after joining, when the backend read it (`nil` if it did not, or if
    /// the line was emptied meanwhile).
    public var head: Contender?
    /// The whole line right after joining, first in line first, when the backend read it in the
    /// same round trip (`nil` otherwise).
    public var line: [Contender]?
    /// The new contender's place right after joining, when the backend knows it (from `line`, or
    /// read on its own). Recipes use it to wait for the contender just ahead without another read.
    public var place: LinePlace?

    public init(contender: Contender, head: Contender?, line: [Contender]? = nil, place: LinePlace? = nil) {
        self.contender = contender
        self.head = head
        self.line = line
        self.place = place ?? line.flatMap { LinePlace.of(contender.key, in: $0) }
    }

    /// Whether the new contender is first in line.
    public var isFirst: Bool {
        if let place { return place.index == 0 }
        return head?.key == contender.key
    }
}

extension KeyValueStore {
    /// Two round trips: create, then read the line. Backends that can do both at once override it.
    public func joinLine(
        under prefix: Key,
        role: ContenderRole,
        value: [UInt8],
        session: Session
    ) async throws(CoordinationError) -> LinePosition {
        let contender = try await createContender(under: prefix, role: role, value: value, session: session)
        let line = try await contenders(under: prefix)
        return LinePosition(contender: contender, head: line.first, line: line)
    }

    /// The default contender layout: `prefix/<session id>`, created if absent and bound to the
    /// session, ordered by create revision (etcd's concurrency package, Consul's api.Semaphore,
    /// and the in-memory store).
    public func createContenderNamedBySession(
        under prefix: Key,
        value: [UInt8],
        session: Session
    ) async throws(CoordinationError) -> Contender {
        let key = try prefix.appending(session.id.rawValue)
        let entry = try await atomicPut(key, value, condition: .absent, options: .boundTo(session))
        return Contender(entry: entry)
    }

    /// The default queue: the direct children of `prefix`, ordered by create revision.
    public func contendersByCreateRevision(under prefix: Key) async throws(CoordinationError) -> [Contender] {
        line(from: try await list(prefix), under: prefix)
    }
}
