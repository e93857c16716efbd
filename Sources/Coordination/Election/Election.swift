@_spi(Backend) import CoordinationCore
import Synchronization

/// Who leads an election, as followers see it.
public struct LeaderInfo: Sendable, Hashable {
    /// The leader's contender key.
    public let key: Key
    /// The value the leader proclaimed (an address, an id).
    public let value: [UInt8]
    /// The leader's term: its fencing token, which grows with every new leader.
    public let term: FencingToken
    /// The leader's session, where the backend reports it.
    public let session: SessionID?

    init(_ entry: Entry) {
        self.key = entry.key
        self.value = entry.value
        self.term = FencingToken(entry.createRevision.value)
        self.session = entry.session
    }

    init(_ contender: Contender) {
        self.key = contender.key
        self.value = contender.value
        self.term = contender.token
        self.session = contender.session
    }

    /// The value as UTF-8.
    public var stringValue: String { String(decoding: value, as: UTF8.self) }
}

/// Leader election under a name: candidates queue, the first in line leads.
///
/// The layout is etcd's concurrency `Election` (`name/<lease hex>` ordered by create revision) and
/// Curator's `LeaderLatch` on ZooKeeper (`name/_c_<uuid>-latch-<seq>`), so `etcdctl elect` and Curator
/// peers take part in the same election.
public struct Election: Sendable {
    public let name: Key
    public let store: any KeyValueStore

    public init(_ name: Key, store: any KeyValueStore) {
        self.name = name
        self.store = store
    }

    /// Joins the line with `value` and waits until this candidate leads. Cancelling the wait removes
    /// the candidate from the line and throws `cancelled`.
    public func campaign(value: [UInt8], session: Session) async throws(CoordinationError) -> Leadership {
        try await telemetry.acquire("coordination.election.campaign") { () async throws(CoordinationError) in
            try await waitToLead(value: value, session: session)
        }
    }

    private var telemetry: RecipeTelemetry { RecipeTelemetry(RecipeTelemetry.election, store: store) }

    /// The wait of ``campaign(value:session:)``, without its metrics.
    private func waitToLead(value: [UInt8], session: Session) async throws(CoordinationError) -> Acquired<Leadership> {
        let turn = try await ContenderQueue(store: store, prefix: name).waitForTurn(
            role: .leader, value: value, session: session, what: "campaigning in '\(name)'")
        let leadership = Leadership(contender: turn.contender, session: session, store: store, telemetry: telemetry)
        return Acquired(value: leadership, waited: turn.waited, token: leadership.term)
    }

    /// ``campaign(value:session:)`` for at most `timeout`: past it the candidate is removed from the
    /// line (as for a cancelled campaign) and this throws `timeout`.
    public func campaign(value: [UInt8], session: Session, timeout: Duration) async throws(CoordinationError)
        -> Leadership
    {
        let election = self
        return try await telemetry.acquire("coordination.election.campaign") { () async throws(CoordinationError) in
            try await withWaitTimeout(timeout, "campaigning in '\(name)'", key: name) {
                () async throws(CoordinationError) in
                try await election.waitToLead(value: value, session: session)
            }
        }
    }

    /// The current leader, if any.
    public func leader() async throws(CoordinationError) -> LeaderInfo? {
        try await store.line.contenders(in: name).first.map(LeaderInfo.init)
    }

    /// The current leader (or `nil`), then every change of leader or of the leader's value.
    public func observe() async throws(CoordinationError) -> LeaderObservation {
        LeaderObservation(events: try await store.watchTree(name), prefix: name, store: store)
    }
}

/// The leaders of an election over time: the current one first (`nil` when nobody leads), then each
/// change. Ends by throwing if the underlying watch fails.
public struct LeaderObservation: AsyncSequence, Sendable {
    public typealias Element = LeaderInfo?
    public typealias Failure = CoordinationError

    let events: WatchStream
    let prefix: Key
    let store: any KeyValueStore

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = LeaderInfo?
        public typealias Failure = CoordinationError

        var events: WatchStream.AsyncIterator
        var line: TrackedLine
        let store: any KeyValueStore
        var last: LeaderInfo??

        public mutating func next() async throws(CoordinationError) -> LeaderInfo?? {
            while let event = try await events.next() {
                line.apply(event)
                let leader = line.contenders(by: store.line).first.map(LeaderInfo.init)
                if last == nil || last! != leader {
                    last = .some(leader)
                    return .some(leader)
                }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(events: events.makeAsyncIterator(), line: TrackedLine(prefix: prefix), store: store, last: nil)
    }
}

/// Leadership held by a candidate: its term, its loss signal, resign and proclaim.
public final class Leadership: Sendable {
    /// The candidate's contender key.
    public let key: Key
    /// The term of this leadership; grows with every new leader of the election.
    public let term: FencingToken
    public let session: Session
    let store: any KeyValueStore
    private let createRevision: Revision
    private let revision: Mutex<Revision>
    private let telemetry: RecipeTelemetry
    private let grantedAt = ContinuousClock.now

    init(contender: Contender, session: Session, store: any KeyValueStore, telemetry: RecipeTelemetry) {
        self.key = contender.key
        self.term = contender.token
        self.createRevision = contender.createRevision
        self.session = session
        self.store = store
        self.revision = Mutex(contender.modifyRevision)
        self.telemetry = telemetry
    }

    /// Records this leadership's end as a loss (a candidate whose leadership was taken from it).
    func recordLoss() {
        telemetry.ended(grantedAt: grantedAt, lost: true)
    }

    /// `true` once the session has ended.
    public var isLost: Bool { !session.isActive }

    /// Waits until leadership is lost (session ended, key removed — also by ``resign()``) and says
    /// why; `nil` if the calling task is cancelled first.
    public func lost() async -> CoordinationError? {
        await grant.lost()
    }

    /// Replaces the value followers see, keeping the term. Throws `notHolder` if leadership was lost.
    ///
    /// Leadership is the candidate's key at its *create* revision (as etcd's `Proclaim` compares
    /// it): a key this leader rewrote in a proclaim whose reply was lost is still its own, so a
    /// later proclaim or resign picks up its current revision instead of failing.
    public func proclaim(_ value: [UInt8]) async throws(CoordinationError) {
        try await store.onTaskExecutor { () async throws(CoordinationError) in
            try session.checkActive()
            var current = revision.withLock { $0 }
            for _ in 0..<Cleanup.attempts {
                do throws(CoordinationError) {
                    let entry = try await store.atomicPut(
                        key, value, condition: .revision(current), options: .boundTo(session))
                    revision.withLock { $0 = entry.modifyRevision }
                    return
                } catch  where error.code == .revisionMismatch {
                    guard let now = try await store.get(key), now.createRevision == createRevision,
                        now.session == nil || now.session == session.id
                    else { throw lostLeadership() }
                    current = now.modifyRevision
                } catch  where error.code == .keyNotFound || error.code == .sessionExpired {
                    throw lostLeadership()
                }
            }
            throw CoordinationError(
                .revisionMismatch, "proclaim in '\(key)': the key kept changing under this leader", key: key.path)
        }
    }

    private func lostLeadership() -> CoordinationError {
        CoordinationError(.notHolder, "proclaim refused: leadership of '\(key)' was lost", key: key.path)
    }

    /// Steps down: removes this candidate from the line, so the next in line leads.
    public func resign() async throws(CoordinationError) {
        try await grant.release()
    }

    private var grant: LockGrant {
        LockGrant(
            contender: Contender(
                key: key,
                order: Revision(term.value),
                createRevision: createRevision,
                modifyRevision: revision.withLock { $0 },
                session: session.id,
                value: []
            ),
            session: session,
            store: store,
            telemetry: telemetry,
            grantedAt: grantedAt
        )
    }
}
