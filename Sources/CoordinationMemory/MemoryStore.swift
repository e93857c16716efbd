@_spi(Backend) import CoordinationCore
import Logging
import ServiceLifecycle
import Synchronization

/// The embedded, in-process store: the default backend and the reference model of every contract.
///
/// Full semantics with no server: one monotonic revision per change, TTL sessions on an injectable
/// clock, watches with snapshot-then-changes and no gap, conditional writes, contenders
/// (`prefix/<session id>` ordered by create revision). Safe under concurrent use from many tasks;
/// nothing polls — ``run()`` sleeps until the next session deadline or until woken.
///
/// ```swift
/// try await MemoryStore().withRunning { store in
///     try await store.put("greeting", "hello")
/// }
/// ```
public final class MemoryStore: KeyValueStore, SessionBackend {
    public let storeDescription: StoreDescription
    public var limits: StoreLimits { configuration.limits }
    public let capabilities: StoreCapabilities = [.valuesOnInnerNodes, .distinguishesExpiry, .revokeForeignSession]

    private let configuration: Configuration
    private let state = Mutex(MemoryState())
    private let wake = WakeSignal()
    private static let instanceCounter = Atomic<UInt64>(0)

    public init(configuration: Configuration = Configuration(), name: String? = nil) {
        self.configuration = configuration
        let number = Self.instanceCounter.add(1, ordering: .relaxed).newValue
        self.storeDescription = StoreDescription(backend: "memory", endpoint: name ?? "local-\(number)")
    }

    // MARK: - Service

    /// Expires abandoned sessions on time. Returns when the store is closed, the task cancelled,
    /// or (in a `ServiceGroup`) on graceful shutdown, which closes the store.
    public func run() async throws {
        try await runClosingOnGracefulShutdown { await expireSessionsUntilClosed() }
    }

    private func expireSessionsUntilClosed() async {
        let clock = configuration.clock
        while !Task.isCancelled {
            let (closed, deadline): (Bool, Duration?) = state.withLock { state in
                state.expireDue(now: clock.now(), store: self)
                return (state.closed, state.nextDeadline())
            }
            if closed { return }
            if let deadline {
                await wake.wait(orUntil: { try? await clock.sleep(until: deadline) })
            } else {
                await wake.wait()
            }
        }
    }

    public func close() async {
        let failure = CoordinationError(
            .storeClosed,
            "the store was closed",
            backend: storeDescription.backend,
            endpoint: storeDescription.endpoint
        )
        let (sessions, watchers): ([Session], [WatchStream.Continuation]) = state.withLock { state in
            guard !state.closed else { return ([], []) }
            state.closed = true
            let sessions = state.sessions.values.map(\.session)
            for session in sessions {
                state.revision += 1
                state.endSession(session.id, reason: .deleted)
            }
            let watchers = state.keyWatchers.values.flatMap(\.values) + state.treeWatchers.values.flatMap(\.values)
            state.keyWatchers.removeAll()
            state.treeWatchers.removeAll()
            return (sessions, watchers)
        }
        // Outside the lock: failing a stream runs its termination handler, which takes the lock.
        for watcher in watchers { watcher.fail(failure) }
        for session in sessions { session.transition(to: .closed) }
        wake.signal()
    }

    // MARK: - Calls

    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        try withOpenState { state in state.entries[key.path] }
    }

    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        try withOpenState { state in state.entries[key.path] != nil }
    }

    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        try validate(value: value, for: key)
        try withOpenState { state throws(CoordinationError) in
            let owner = try checkSession(options.session, in: &state, key: key)
            state.write(key, value, session: owner)
        }
    }

    public func delete(_ key: Key) async throws(CoordinationError) {
        try withOpenState { state in
            if state.entries[key.path] != nil {
                state.revision += 1
                state.remove(key.path, reason: .deleted)
            }
        }
    }

    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] {
        try withOpenState { state in
            state.descendants(of: prefix.path).compactMap { state.entries[$0] }.sorted { $0.key < $1.key }
        }
    }

    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        try withOpenState { state in
            var doomed = state.descendants(of: prefix.path).filter { state.entries[$0] != nil }
            if state.entries[prefix.path] != nil { doomed.append(prefix.path) }
            guard !doomed.isEmpty else { return }
            state.revision += 1
            for path in doomed.sorted() { state.remove(path, reason: .deleted) }
        }
    }

    public func atomicPut(
        _ key: Key,
        _ value: [UInt8],
        condition: PutCondition,
        options: PutOptions
    ) async throws(CoordinationError) -> Entry {
        try validate(value: value, for: key)
        return try withOpenState { state throws(CoordinationError) in
            let current = state.entries[key.path]
            switch condition {
            case .absent:
                if current != nil {
                    throw failure(.keyExists, "create failed: the key already exists", key: key)
                }
            case .revision(let expected):
                guard let current else {
                    throw failure(.keyNotFound, "compare-and-set failed: the key does not exist", key: key)
                }
                if current.modifyRevision != expected {
                    throw failure(
                        .revisionMismatch,
                        "compare-and-set failed: expected revision \(expected), found \(current.modifyRevision)",
                        key: key
                    )
                }
            }
            let owner = try checkSession(options.session, in: &state, key: key)
            return state.write(key, value, session: owner)
        }
    }

    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        try withOpenState { state throws(CoordinationError) in
            guard let current = state.entries[key.path] else {
                throw failure(.keyNotFound, "compare-and-delete failed: the key does not exist", key: key)
            }
            if current.modifyRevision != revision {
                throw failure(
                    .revisionMismatch,
                    "compare-and-delete failed: expected revision \(revision), found \(current.modifyRevision)",
                    key: key
                )
            }
            state.revision += 1
            state.remove(key.path, reason: .deleted)
        }
    }

    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try register(key, tree: false)
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try register(prefix, tree: true)
    }

    private func register(_ key: Key, tree: Bool) throws(CoordinationError) -> WatchStream {
        let (stream, continuation) = WatchStream.makeStream()
        let id: Int = try withOpenState { state in
            let snapshot: [Entry]
            if tree {
                snapshot = state.descendants(of: key.path).compactMap { state.entries[$0] }.sorted { $0.key < $1.key }
            } else {
                snapshot = state.entries[key.path].map { [$0] } ?? []
            }
            continuation.yield(.snapshot(WatchSnapshot(entries: snapshot, revision: Revision(state.revision))))
            let id = state.nextWatcherID
            state.nextWatcherID += 1
            if tree {
                state.treeWatchers[key.path, default: [:]][id] = continuation
            } else {
                state.keyWatchers[key.path, default: [:]][id] = continuation
            }
            return id
        }
        continuation.onTermination { [weak self] in
            self?.state.withLock { state in
                if tree {
                    state.treeWatchers[key.path]?.removeValue(forKey: id)
                    if state.treeWatchers[key.path]?.isEmpty == true {
                        state.treeWatchers.removeValue(forKey: key.path)
                    }
                } else {
                    state.keyWatchers[key.path]?.removeValue(forKey: id)
                    if state.keyWatchers[key.path]?.isEmpty == true { state.keyWatchers.removeValue(forKey: key.path) }
                }
            }
        }
        return stream
    }

    // MARK: - Sessions

    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try validate(ttl: ttl)
        return try withOpenState { state in
            state.sessionCounter += 1
            let id = SessionID(
                "\(String(state.sessionCounter, radix: 16))-\(String(UInt32.random(in: .min ... .max), radix: 16))"
            )
            let session = Session(id: id, ttl: ttl, backend: self)
            state.sessions[id] = SessionRecord(session: session, ttl: ttl)
            return session
        }
    }

    /// Every session of this store, with its TTL.
    public func listSessions() async throws(CoordinationError) -> [SessionSummary] {
        try withOpenState { state in
            state.sessions.map { id, record in SessionSummary(id: id, ttl: record.ttl) }
        }
    }

    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        try withOpenState { state in
            guard let session = state.sessions[id]?.session else { return }
            session.transition(to: .expired)
            state.revision += 1
            state.endSession(id, reason: .expired)
        }
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        let known: Bool = state.withLock { state in
            guard state.sessions[id] != nil else { return false }
            state.revision += 1
            state.endSession(id, reason: .deleted)
            return true
        }
        _ = known
    }

    public func abandonSession(_ id: SessionID) {
        let now = configuration.clock.now()
        state.withLock { state in
            if let record = state.sessions[id], record.deadline == nil {
                let deadline = now + record.ttl
                state.sessions[id]?.deadline = deadline
                state.earliestDeadline = min(state.earliestDeadline ?? deadline, deadline)
            }
        }
        wake.signal()
    }

    // MARK: - Internals

    /// Runs `body` on the state after expiring due sessions; throws `storeClosed` after close.
    func withOpenState<T>(
        _ body: (inout MemoryState) throws(CoordinationError) -> T
    ) throws(CoordinationError) -> T {
        let now = configuration.clock.now()
        let result: Result<T, CoordinationError> = state.withLock { state in
            if state.closed {
                return .failure(failure(.storeClosed, "the store was closed", key: nil))
            }
            state.expireDue(now: now, store: self)
            do throws(CoordinationError) {
                return .success(try body(&state))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func checkSession(_ session: Session?, in state: inout MemoryState, key: Key) throws(CoordinationError)
        -> SessionID?
    {
        guard let session else { return nil }
        guard state.sessions[session.id] != nil, session.isActive else {
            throw failure(.sessionExpired, "session \(session.id) has ended; cannot bind a key to it", key: key)
        }
        return session.id
    }

    fileprivate func failure(_ code: CoordinationError.Code, _ message: String, key: Key?) -> CoordinationError {
        storeDescription.error(code, message, key: key)
    }
}

extension MemoryStore: SessionListingStore {}
