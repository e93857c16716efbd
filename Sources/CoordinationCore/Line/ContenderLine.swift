/// The one ordering primitive every recipe stands on: a line of session-bound contenders under a
/// prefix, first in line first.
///
/// A lock, an election and a semaphore all do the same four things with it: **join** (create a
/// contender and learn its place), ask its **place** again, **wait until the one ahead is gone**,
/// and **leave**. Each backend implements them in one file (`<Backend>Store+Line.swift`) with the
/// layout and order of its reference implementation (etcd's concurrency package, Curator, Consul's
/// `api.Lock` / `api.Semaphore`; see docs/architecture.md), so the recipes never branch on a backend.
///
/// **Reads have no side effects.** ``contenders(in:)`` and ``contenders(in:from:)`` only read; what
/// a backend must write to put a contender at the head (Consul takes `api.Lock`'s `.lock` key) it
/// does in ``join(_:role:value:session:)`` and ``place(of:in:)``, the two steps of a contender
/// making its way up the line.
public protocol ContenderLine: Sendable {
    /// The store the line lives in.
    associatedtype Store: KeyValueStore
    var store: Store { get }

    /// Creates a contender of `role` under `prefix`, bound to `session`, and tells where it stands
    /// right after — in one round trip where the backend can (etcd: one `Txn`; ZooKeeper: a create
    /// and a listing, pipelined), so an uncontended lock costs one request to take and one to
    /// release. A session has at most one contender under a prefix on backends that name contenders
    /// by session; a second gives `keyExists`.
    ///
    /// **Not abandoned on cancellation:** once its request may have been sent, the join runs to its
    /// own end (or deadline) even if the calling task is cancelled, and returns what it created; the
    /// caller removes it. A request cancelled in flight could otherwise land after the caller's
    /// cleanup and leave a contender nobody knows about. Network backends wrap the join in
    /// `runToCompletion(on:_:)`.
    func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
        async throws(CoordinationError) -> LineJoin

    /// Where `contender` stands in the line under `prefix` now, or `nil` if it is no longer in it
    /// (its key removed, or created again since). A waiter asks this each time the one ahead of it
    /// has gone; the read is consistent enough that nothing created before `contender` is missed.
    /// The default reads the whole line; a backend that can tell the place more cheaply does so.
    func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace?

    /// Waits until `ahead` is gone: its key absent, deleted, created again since, or (with a
    /// session) no longer bound to that session. Returns at once if that is already so. The
    /// default is the store's ``KeyValueStore/waitUntilGone(_:createdAt:session:)``.
    func waitUntilGone(_ ahead: LinePlace.Ahead) async throws(CoordinationError)

    /// Takes `contender` (that incarnation only) out of the line. `keyNotFound` or
    /// `revisionMismatch`: it was gone already. The default is a guarded delete
    /// (``KeyValueStore/atomicDelete(_:revision:)``).
    func leave(_ contender: Contender) async throws(CoordinationError)

    /// Every contender under `prefix`, first in line first. Only reads.
    func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender]

    /// The contenders that `entries` (a snapshot of the subtree, as a tree watch keeps it) show,
    /// first in line first, by the same rules as ``contenders(in:)``. No I/O. Keys nested below the
    /// prefix and keys that are no contender (ZooKeeper parent znodes, Consul's `.lock` when nobody
    /// holds it) are never part of it.
    func contenders(in prefix: Key, from entries: [Entry]) -> [Contender]
}

extension ContenderLine {
    public func waitUntilGone(_ ahead: LinePlace.Ahead) async throws(CoordinationError) {
        try await store.waitUntilGone(ahead.key, createdAt: ahead.createRevision, session: ahead.session)
    }

    public func leave(_ contender: Contender) async throws(CoordinationError) {
        try await store.atomicDelete(contender.key, revision: contender.modifyRevision)
    }

    /// The default order: the direct children of `prefix`, by create revision (etcd's concurrency
    /// package, Consul's api.Semaphore, the in-memory store).
    public func contenders(in prefix: Key, from entries: [Entry]) -> [Contender] {
        entries
            .filter { $0.key.isChild(of: prefix) }
            .sorted { $0.createRevision < $1.createRevision }
            .map(Contender.init(entry:))
    }

    /// The default place: read the whole line (``contenders(in:)``) and find `contender` in it.
    public func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace? {
        LinePlace.of(contender, in: try await contenders(in: prefix))
    }

    /// For a backend whose join cannot read the line in the same round trip: `contender`, just
    /// created, and its place from a read of the whole line.
    @_spi(Backend) public func placing(_ contender: Contender, in prefix: Key) async throws(CoordinationError)
        -> LineJoin
    {
        LineJoin(contender: contender, place: try await place(of: contender, in: prefix))
    }
}

/// A contender just created, and where it stood right after.
public struct LineJoin: Sendable, Hashable {
    public var contender: Contender
    /// Its place right after joining; `nil` if it was no longer in line by then (removed at once
    /// by an operator, or its session ended).
    public var place: LinePlace?

    @_spi(Backend) public init(contender: Contender, place: LinePlace?) {
        self.contender = contender
        self.place = place
    }

    /// Whether the new contender was first in line.
    public var isFirst: Bool { place == .first }
}

/// Where a contender stands in its line at one moment. This is all a waiter needs; reading it can
/// be cheaper than reading the whole line (ZooKeeper: the children's names alone; etcd: the two
/// contenders created just before it).
public enum LinePlace: Sendable, Hashable {
    /// First in line: it holds.
    case first
    /// Behind `ahead`, the contender just before it: it waits for that one to go.
    case behind(Ahead)

    /// The contender just ahead, as much as a waiter needs to wait for it to go.
    public struct Ahead: Sendable, Hashable {
        public var key: Key
        /// Its create revision, when the line read told it; `nil` when the key alone names one
        /// incarnation (ZooKeeper's sequential names are never reused).
        public var createRevision: Revision?
        /// Its session, when that matters to tell it gone (a shared key released, not deleted).
        public var session: SessionID?

        @_spi(Backend) public init(key: Key, createRevision: Revision?, session: SessionID?) {
            self.key = key
            self.createRevision = createRevision
            self.session = session
        }

        @_spi(Backend) public init(_ contender: Contender) {
            self.init(key: contender.key, createRevision: contender.createRevision, session: contender.session)
        }
    }

    /// The place of `contender` (that incarnation: its key at its create revision) in `line`
    /// (first in line first), or `nil` if it is not in it.
    @_spi(Backend) public static func of(_ contender: Contender, in line: [Contender]) -> LinePlace? {
        guard
            let index = line.firstIndex(where: {
                $0.key == contender.key && $0.createRevision == contender.createRevision
            })
        else { return nil }
        return index == 0 ? .first : .behind(Ahead(line[index - 1]))
    }
}
