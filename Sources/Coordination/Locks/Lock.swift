import CoordinationCore

/// A distributed mutex: FIFO-fair, herd-free, cancellable while waiting, with fencing tokens and a
/// loss signal tied to the session.
///
/// Each acquirer queues a session-bound contender under the lock's name (the backend's layout:
/// etcd `name/<lease hex>`, ZooKeeper `name/_c_<uuid>-lock-<seq>`, Consul and memory
/// `name/<session id>`), holds when first in line, and otherwise watches only the contender just
/// ahead of it. This is the layout of etcd's concurrency `Mutex` and Curator's `InterProcessMutex`,
/// so this lock excludes their users too.
///
/// ```swift
/// let session = try await store.makeSession(ttl: .seconds(10))
/// let lock = Lock(try Key("locks/nightly-report"), session: session, store: store)
/// try await lock.withLock { grant in
///     try await runReport(fencingToken: grant.token)
/// }
/// ```
///
/// One session holds at most one contender per lock name on backends that name contenders by
/// session (etcd, Consul, memory): use one session per concurrent holder.
public struct Lock: Sendable {
    public let name: Key
    public let session: Session
    public let store: any KeyValueStore
    /// The value stored in the contender key (visible to `etcdctl lock` users, for example).
    public var value: [UInt8]

    public init(_ name: Key, session: Session, store: any KeyValueStore, value: [UInt8] = []) {
        self.name = name
        self.session = session
        self.store = store
        self.value = value
    }

    /// Waits until the lock is held and returns the grant. Cancelling the waiting task removes this
    /// contender from the line and throws `cancelled`; if the session ends while waiting this throws
    /// `sessionExpired` / `sessionClosed`.
    public func acquire() async throws(CoordinationError) -> LockGrant {
        try await telemetry.acquire("coordination.lock.acquire") { () async throws(CoordinationError) in
            try await waitForGrant()
        }
    }

    private var telemetry: RecipeTelemetry { RecipeTelemetry(RecipeTelemetry.lock, store: store) }

    /// The wait of ``acquire()``, without its metrics.
    private func waitForGrant() async throws(CoordinationError) -> Acquired<LockGrant> {
        let turn = try await ContenderQueue(store: store, prefix: name).waitForTurn(
            role: .lock, value: value, session: session, what: "waiting for lock '\(name)'")
        let grant = LockGrant(contender: turn.contender, session: session, store: store, telemetry: telemetry)
        return Acquired(value: grant, waited: turn.waited, token: grant.token)
    }

    /// ``acquire()`` for at most `timeout`: past it the wait is given up, this contender is removed
    /// from the line (as for a cancelled wait) and this throws `timeout`. A grant that arrives as the
    /// deadline passes is still returned.
    public func acquire(timeout: Duration) async throws(CoordinationError) -> LockGrant {
        let lock = self
        return try await telemetry.acquire("coordination.lock.acquire") { () async throws(CoordinationError) in
            try await withWaitTimeout(timeout, "waiting for lock '\(name)'", key: name) {
                () async throws(CoordinationError) in
                try await lock.waitForGrant()
            }
        }
    }

    /// Takes the lock if it is free right now; otherwise leaves no trace and returns `nil`.
    public func tryAcquire() async throws(CoordinationError) -> LockGrant? {
        try await telemetry.tryAcquire("coordination.lock.try_acquire") { () async throws(CoordinationError) in
            try await store.onTaskExecutor { () async throws(CoordinationError) -> Acquired<LockGrant>? in
                try session.checkActive()
                let queue = ContenderQueue(store: store, prefix: name)
                let joined = try await queue.join(role: .lock, value: value, session: session)
                if joined.isFirst, session.isActive {
                    let grant = LockGrant(
                        contender: joined.contender, session: session, store: store, telemetry: telemetry)
                    return Acquired(value: grant, waited: false, token: grant.token)
                }
                await queue.remove(joined.contender, session: session)
                try session.checkActive()
                return nil
            }
        }
    }

    /// Acquires the lock, runs `body`, and releases. If the grant is lost while `body` runs (session
    /// expired, key removed), `body` is cancelled and this throws `lockLost` once it returns.
    public func withLock<Result: Sendable>(
        _ body: @escaping @Sendable (LockGrant) async throws -> Result
    ) async throws -> Result {
        let grant = try await acquire()
        return try await runGuarded(grant, body)
    }

    /// The current holder's contender, if any.
    public func holder() async throws(CoordinationError) -> Contender? {
        try await store.line.contenders(in: name).first
    }
}
