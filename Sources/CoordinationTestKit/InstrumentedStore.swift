import CoordinationCore
import ServiceLifecycle
import Synchronization

/// A store that forwards every call to a real one and counts the calls, so checks can assert how
/// much work a recipe does (for example that a release wakes exactly one waiter). Not a mock: every
/// call reaches the wrapped store.
public final class InstrumentedStore: KeyValueStore, Sendable {
    public let base: any KeyValueStore
    private let counts = Mutex<[String: Int]>([:])
    private let executorOverride: (any TaskExecutor)?
    private let onCall: (@Sendable (String) -> Void)?

    /// `taskExecutor` replaces the base store's `KeyValueStore.taskExecutor`; `onCall` is told
    /// the name of each call as it is made, on the caller's thread.
    public init(
        _ base: any KeyValueStore, taskExecutor: (any TaskExecutor)? = nil, onCall: (@Sendable (String) -> Void)? = nil
    ) {
        self.base = base
        self.executorOverride = taskExecutor
        self.onCall = onCall
    }

    /// How many times `call` (a method name such as `contenders`) was made.
    public func count(_ call: String) -> Int { counts.withLock { $0[call, default: 0] } }

    /// Sets every count back to zero.
    public func resetCounts() { counts.withLock { $0.removeAll() } }

    fileprivate func record(_ call: String) {
        counts.withLock { $0[call, default: 0] += 1 }
        onCall?(call)
    }

    public var storeDescription: StoreDescription { base.storeDescription }
    public var limits: StoreLimits { base.limits }
    public var capabilities: StoreCapabilities { base.capabilities }
    public var taskExecutor: (any TaskExecutor)? { executorOverride ?? base.taskExecutor }

    public func run() async throws { try await base.run() }
    public func close() async { await base.close() }

    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        record("get")
        return try await base.get(key)
    }
    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        record("put")
        try await base.put(key, value, options: options)
    }
    public func delete(_ key: Key) async throws(CoordinationError) {
        record("delete")
        try await base.delete(key)
    }
    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        record("exists")
        return try await base.exists(key)
    }
    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] {
        record("list")
        return try await base.list(prefix)
    }
    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        record("deleteTree")
        try await base.deleteTree(prefix)
    }
    public func atomicPut(
        _ key: Key,
        _ value: [UInt8],
        condition: PutCondition,
        options: PutOptions
    ) async throws(CoordinationError) -> Entry {
        record("atomicPut")
        return try await base.atomicPut(key, value, condition: condition, options: options)
    }
    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        record("atomicDelete")
        try await base.atomicDelete(key, revision: revision)
    }
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        record("watch")
        return try await base.watch(key)
    }
    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        record("watchTree")
        return try await base.watchTree(prefix)
    }
    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        record("makeSession")
        return try await base.makeSession(ttl: ttl)
    }
    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        record("revokeSession")
        try await base.revokeSession(id)
    }
    /// Counted as a `watch`: it is how a waiter watches its predecessor, whatever the backend uses.
    public func waitUntilGone(_ key: Key, createdAt createRevision: Revision?, session: SessionID?)
        async throws(CoordinationError)
    {
        record("watch")
        try await base.waitUntilGone(key, createdAt: createRevision, session: session)
    }
}

extension InstrumentedStore {
    /// The wrapped store's line, counted: a join as `joinLine`; a place or a line read as
    /// `contenders` (it is how a waiter looks at the line, whatever the backend reads); a wait for
    /// the one ahead as `watch` (through the store's ``waitUntilGone(_:createdAt:session:)``);
    /// leaving as `atomicDelete`.
    public struct Line: ContenderLine {
        public let store: InstrumentedStore
        let base: any ContenderLine

        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            store.record("joinLine")
            return try await base.join(prefix, role: role, value: value, session: session)
        }
        public func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace? {
            store.record("contenders")
            return try await base.place(of: contender, in: prefix)
        }
        public func leave(_ contender: Contender) async throws(CoordinationError) {
            store.record("atomicDelete")
            try await base.leave(contender)
        }
        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            store.record("contenders")
            return try await base.contenders(in: prefix)
        }
        public func contenders(in prefix: Key, from entries: [Entry]) -> [Contender] {
            base.contenders(in: prefix, from: entries)
        }
    }

    public var line: Line { Line(store: self, base: base.line) }
}
