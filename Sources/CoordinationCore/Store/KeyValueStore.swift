import ServiceLifecycle

/// How an ``KeyValueStore/atomicPut(_:_:condition:options:)`` decides whether to write.
public enum PutCondition: Sendable, Hashable {
    /// Create only if the key does not exist; otherwise fail with `keyExists`.
    case absent
    /// Replace only if the key's modify revision is exactly this one; fail with `revisionMismatch`
    /// if it differs, `keyNotFound` if the key is gone.
    case revision(Revision)
}

/// Options for a write.
public struct PutOptions: Sendable {
    /// Bind the key to this session: it is removed when the session ends.
    public var session: Session?
    /// Create a directory rather than a key (etcd v2 only, libkv's `IsDir`); ignored elsewhere.
    public var isDirectory: Bool

    public init(session: Session? = nil, isDirectory: Bool = false) {
        self.session = session
        self.isDirectory = isDirectory
    }

    public static var none: PutOptions { PutOptions() }

    /// Bind to `session`.
    public static func boundTo(_ session: Session) -> PutOptions { PutOptions(session: session) }
}

/// The backend-neutral store every recipe is written against.
///
/// The call set is libkv / valkeyrie's, async, plus sessions and the one ordering primitive
/// (``line``, a ``ContenderLine``).
/// Every backend keeps the same contracts, proven by `CoordinationTestKit` against the real server:
///
/// - Keys follow the single rule set of ``Key``; values are bytes up to ``limits``.
/// - ``list(_:)``, ``deleteTree(_:)`` and ``watchTree(_:)`` mean the subtree strictly below the prefix.
/// - Conditional writes fail with `keyExists`, `revisionMismatch` or `keyNotFound`.
/// - A store is a `Service`: `run()` owns its connection and timers; ``close()`` ends its sessions
///   and watches. Use `withRunning { store in … }` for a scoped lifetime.
public protocol KeyValueStore: Service, Sendable {
    /// Which backend and endpoint this is.
    var storeDescription: StoreDescription { get }
    /// What values and TTLs the store accepts.
    var limits: StoreLimits { get }
    /// Optional behaviour this backend offers.
    var capabilities: StoreCapabilities { get }
    /// The executor the store's replies arrive on, if it has one: a backend on SwiftNIO names the
    /// event loop its connections use. The recipes run their steps under this preference
    /// (`withTaskExecutorPreference`), so a lock hand-off or a campaign's reads and writes continue
    /// on the thread that received the reply instead of waking another thread for each step. An
    /// application making many calls in a row can do the same. `nil` (the default): no preference.
    var taskExecutor: (any TaskExecutor)? { get }

    /// The entry at `key`, or `nil` if there is none.
    func get(_ key: Key) async throws(CoordinationError) -> Entry?
    /// Writes `value` at `key`, creating it if needed.
    func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError)
    /// Removes `key` if present. Deleting a missing key is not an error.
    func delete(_ key: Key) async throws(CoordinationError)
    /// Whether `key` exists.
    func exists(_ key: Key) async throws(CoordinationError) -> Bool
    /// Every entry strictly below `prefix` (recursive; the prefix itself excluded), sorted by key.
    /// A prefix with nothing below it gives an empty array.
    func list(_ prefix: Key) async throws(CoordinationError) -> [Entry]
    /// Removes `prefix` and everything below it.
    func deleteTree(_ prefix: Key) async throws(CoordinationError)
    /// A conditional write; returns the entry as written.
    func atomicPut(_ key: Key, _ value: [UInt8], condition: PutCondition, options: PutOptions)
        async throws(CoordinationError) -> Entry
    /// Deletes `key` only if its modify revision is `revision`.
    func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError)
    /// Watches one key: a snapshot (present or absent), then every change.
    func watch(_ key: Key) async throws(CoordinationError) -> WatchStream
    /// Watches the subtree strictly below `prefix`: a snapshot, then every change.
    func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream

    /// Opens a session with the given time-to-live, kept alive by the store until closed.
    func makeSession(ttl: Duration) async throws(CoordinationError) -> Session
    /// Ends a session by id, from any client: its keys are removed and its owner sees `expired`.
    func revokeSession(_ id: SessionID) async throws(CoordinationError)

    /// The kind of ``ContenderLine`` this store keeps.
    associatedtype Line: ContenderLine
    /// The contender lines under this store's keys: the ordering primitive locks, elections and
    /// semaphores stand on.
    var line: Line { get }

    /// Waits until the incarnation of `key` created at `createRevision` is gone: the key is absent,
    /// deleted, or was created again since (a contender that released and queued again under the
    /// same key is a different contender, later in line). Returns at once if that is already so.
    /// With `session`, a key that is no longer bound to that session is gone too (a shared lock key
    /// such as Consul's `api.Lock` key is released, not deleted, when its holder lets go).
    ///
    /// This is how a waiter watches its predecessor (``ContenderLine/waitUntilGone(_:)``) and a
    /// holder its own key. The default watches `key`; a backend with a cheaper one-shot wait
    /// (ZooKeeper's `exists` watch) offers that instead.
    func waitUntilGone(_ key: Key, createdAt createRevision: Revision?, session: SessionID?)
        async throws(CoordinationError)

    /// Ends the store's sessions and watches and releases its connection. Idempotent.
    func close() async
}

extension KeyValueStore {
    public var taskExecutor: (any TaskExecutor)? { nil }

    /// Runs `body` under the preference of the store's ``taskExecutor`` (directly if it has none).
    public func onTaskExecutor<Result, Failure: Error>(
        _ body: () async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        try await withTaskExecutorPreference(taskExecutor, operation: body)
    }

    public func waitUntilGone(_ key: Key, createdAt createRevision: Revision?, session: SessionID?)
        async throws(CoordinationError)
    {
        try await waitUntilGoneOnWatch(key, createdAt: createRevision, session: session)
    }

    /// The default ``waitUntilGone(_:createdAt:session:)``: a watch of `key` of its own, until the
    /// incarnation is gone. A backend that overrides the wait for some cases calls it for the rest.
    @_spi(Backend) public func waitUntilGoneOnWatch(
        _ key: Key, createdAt createRevision: Revision?, session: SessionID?
    )
        async throws(CoordinationError)
    {
        func isOther(_ entry: Entry) -> Bool {
            if let session, entry.session != session { return true }
            return createRevision.map { entry.createRevision != $0 } ?? false
        }
        let events = try await watch(key)
        for try await event in events {
            switch event {
            case .snapshot(let snapshot):
                guard let entry = snapshot.entries.first, !isOther(entry) else { return }
            case .deleted:
                return
            case .put(let entry):
                if isOther(entry) { return }
            }
        }
        throw CoordinationError(.cancelled, "stopped waiting for '\(key)' to be removed")
    }
}

/// Runs every store of `stores` (each in a task of its own) for the duration of `body`, then closes
/// them all, also when `body` throws.
///
/// `body` runs in the caller's isolation (a `@main` type's `main()`, an actor), so it may use
/// what the caller holds without sending it anywhere.
public func withRunning<Store: KeyValueStore, Result>(
    _ stores: [Store],
    isolation: isolated (any Actor)? = #isolation,
    _ body: ([Store]) async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self, returning: Result.self, isolation: isolation) { group in
        for store in stores { group.addTask { try await store.run() } }
        defer { group.cancelAll() }
        do {
            let result = try await body(stores)
            for store in stores { await store.close() }
            return result
        } catch {
            for store in stores { await store.close() }
            throw error
        }
    }
}

extension KeyValueStore {
    /// Runs the store for the duration of `body`, then closes it (also when `body` throws).
    ///
    /// `body` runs in the caller's isolation (a `@main` type's `main()`, an actor), so it may use
    /// what the caller holds without sending it anywhere. For a store among other services, put
    /// it in a `ServiceGroup` instead: it closes itself on graceful shutdown.
    public func withRunning<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Self) async throws -> Result
    ) async throws -> Result {
        try await CoordinationCore.withRunning([self], isolation: isolation) { stores in try await body(stores[0]) }
    }

    /// For a backend's `run()`: runs `body` — the store's own work, which returns once the store is
    /// closed or the task cancelled — and closes the store when the `ServiceGroup` it runs in
    /// shuts down gracefully, so `run()` then returns. (A group shuts its services down in reverse
    /// order: a store listed before the services that use it is closed after they have stopped.)
    @_spi(Backend) public func runClosingOnGracefulShutdown(_ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Throws when cancelled instead: the store's work then ends by cancellation.
                guard (try? await gracefulShutdown()) != nil else { return }
                await self.close()
            }
            defer { group.cancelAll() }
            try await body()
        }
    }

    /// The value at `key` as a UTF-8 string, or `nil`.
    public func getString(_ key: Key) async throws(CoordinationError) -> String? {
        try await get(key)?.stringValue
    }

    public func put(_ key: Key, _ value: [UInt8]) async throws(CoordinationError) {
        try await put(key, value, options: .none)
    }

    public func put(_ key: Key, _ value: String, options: PutOptions = .none) async throws(CoordinationError) {
        try await put(key, Array(value.utf8), options: options)
    }

    public func atomicPut(_ key: Key, _ value: [UInt8], condition: PutCondition) async throws(CoordinationError)
        -> Entry
    {
        try await atomicPut(key, value, condition: condition, options: .none)
    }

    // String-keyed conveniences: the key is validated before any I/O and an invalid one throws
    // `invalidKey`.

    public func get(_ key: String) async throws(CoordinationError) -> Entry? { try await get(Key(key)) }
    public func put(_ key: String, _ value: [UInt8], options: PutOptions = .none) async throws(CoordinationError) {
        try await put(Key(key), value, options: options)
    }
    public func put(_ key: String, _ value: String, options: PutOptions = .none) async throws(CoordinationError) {
        try await put(Key(key), Array(value.utf8), options: options)
    }
    public func delete(_ key: String) async throws(CoordinationError) { try await delete(Key(key)) }
    public func exists(_ key: String) async throws(CoordinationError) -> Bool { try await exists(Key(key)) }
    public func list(_ prefix: String) async throws(CoordinationError) -> [Entry] { try await list(Key(prefix)) }
    public func deleteTree(_ prefix: String) async throws(CoordinationError) { try await deleteTree(Key(prefix)) }
    public func watch(_ key: String) async throws(CoordinationError) -> WatchStream { try await watch(Key(key)) }
    public func watchTree(_ prefix: String) async throws(CoordinationError) -> WatchStream {
        try await watchTree(Key(prefix))
    }

    /// Checks a value against ``limits`` before any I/O.
    @_spi(Backend) public func validate(value: [UInt8], for key: Key) throws(CoordinationError) {
        if value.count > limits.maxValueSize {
            throw CoordinationError(
                .valueTooLarge,
                "value of \(value.count) bytes exceeds the limit of \(limits.maxValueSize) bytes",
                key: key.path,
                backend: storeDescription.backend,
                endpoint: storeDescription.endpoint
            )
        }
    }

    /// Checks a session TTL against ``limits`` before any I/O.
    @_spi(Backend) public func validate(ttl: Duration) throws(CoordinationError) {
        if ttl < limits.minimumSessionTTL || ttl > limits.maximumSessionTTL {
            throw CoordinationError(
                .invalidArgument,
                "session TTL \(ttl) is outside \(limits.minimumSessionTTL)...\(limits.maximumSessionTTL)",
                backend: storeDescription.backend,
                endpoint: storeDescription.endpoint
            )
        }
    }
}
