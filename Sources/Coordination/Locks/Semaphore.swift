import CoordinationCore

/// A distributed counting semaphore: at most ``permits`` holders at once, FIFO, with the lock's
/// promises (cancellable wait that leaves no key, guarded release, fencing token, loss signal).
///
/// Contenders queue under the name like a ``Lock``'s; a contender holds while it is among the first
/// `permits` in line. A waiter follows the line through one tree watch, so it needs no request per
/// change. Every client must use the same `permits` for a name.
public struct Semaphore: Sendable {
    public let name: Key
    public let permits: Int
    public let session: Session
    public let store: any KeyValueStore

    public init(_ name: Key, permits: Int, session: Session, store: any KeyValueStore) {
        self.name = name
        self.permits = permits
        self.session = session
        self.store = store
    }

    /// Waits for a permit.
    public func acquire() async throws(CoordinationError) -> LockGrant {
        try await telemetry.acquire("coordination.semaphore.acquire") { () async throws(CoordinationError) in
            try await waitForPermit()
        }
    }

    private var telemetry: RecipeTelemetry { RecipeTelemetry(RecipeTelemetry.semaphore, store: store) }

    /// The wait of ``acquire()``, without its metrics.
    private func waitForPermit() async throws(CoordinationError) -> Acquired<LockGrant> {
        try await store.onTaskExecutor { () async throws(CoordinationError) in
            guard permits > 0 else {
                throw CoordinationError(.invalidArgument, "a semaphore needs at least one permit", key: name.path)
            }
            try session.checkActive()
            let name = self.name
            let permits = self.permits
            let store = self.store
            let queue = ContenderQueue(store: store, prefix: name)
            // Where joining left it does not matter: a permit holder need not be first, so the
            // line is followed through a tree watch instead.
            let me = try await queue.join(role: .semaphore, value: [], session: session).contender
            do {
                // Whether it waited: no free permit at the first look.
                let waited = try await whileActive(session, what: "waiting for a permit of '\(name)'") {
                    var line = TrackedLine(prefix: name)
                    var waited = false
                    for try await event in try await store.watchTree(name) {
                        line.apply(event)
                        guard let position = line.contenders(by: queue.line).firstIndex(where: { $0.key == me.key })
                        else {
                            throw CoordinationError(
                                .lockLost, "contender '\(me.key)' left the line while waiting", key: me.key.path)
                        }
                        if position < permits { return waited }
                        waited = true
                    }
                    throw CoordinationError(.cancelled, "waiting for a permit of '\(name)': cancelled")
                }
                if Task.isCancelled {
                    throw CoordinationError(.cancelled, "waiting for a permit of '\(name)': cancelled")
                }
                try session.checkActive()  // no grant past the session's deadline (a paused process)
                let grant = LockGrant(contender: me, session: session, store: store, telemetry: telemetry)
                return Acquired(value: grant, waited: waited, token: grant.token)
            } catch {
                await queue.remove(me, session: session)
                throw coordinationError(error, cancelled: Task.isCancelled, "waiting for a permit of '\(name)'")
            }
        }
    }

    /// ``acquire()`` for at most `timeout`: past it the wait is given up, this contender is removed
    /// (as for a cancelled wait) and this throws `timeout`.
    public func acquire(timeout: Duration) async throws(CoordinationError) -> LockGrant {
        let semaphore = self
        return try await telemetry.acquire("coordination.semaphore.acquire") { () async throws(CoordinationError) in
            try await withWaitTimeout(timeout, "waiting for a permit of '\(name)'", key: name) {
                () async throws(CoordinationError) in
                try await semaphore.waitForPermit()
            }
        }
    }

    /// Acquires a permit, runs `body`, releases; cancels `body` and throws `lockLost` if the permit
    /// is lost meanwhile.
    public func withPermit<Result: Sendable>(
        _ body: @escaping @Sendable (LockGrant) async throws -> Result
    ) async throws -> Result {
        let grant = try await acquire()
        return try await runGuarded(grant, body)
    }

    /// The contenders currently holding permits.
    public func holders() async throws(CoordinationError) -> [Contender] {
        Array(try await store.line.contenders(in: name).prefix(permits))
    }
}
