import CoordinationCore
import ServiceLifecycle
import Synchronization

/// A store that forwards every call to a real one, except that a call armed with a fault fails:
/// either after the real store carried it out (the reply was lost: a timeout after the request was
/// sent) or without reaching it at all (the server was unreachable). This is how the fault suite
/// makes a join, a release or a proclaim whose outcome is unknown, against a real server.
public final class LostReplyStore: KeyValueStore, Sendable {
    /// What happens to an armed call.
    public enum Fault: Sendable {
        /// The call is carried out by the real store, then fails with `timeout`.
        case loseReply
        /// The call fails with `connectionFailed` and never reaches the real store.
        case refuse
    }

    public let base: any KeyValueStore
    private let armed = Mutex<[String: (fault: Fault, remaining: Int)]>([:])

    public init(_ base: any KeyValueStore) { self.base = base }

    /// Makes the next `times` calls named `call` (`joinLine`, `atomicPut`, `atomicDelete` — also a
    /// contender's leaving — and `waitUntilGone`) fail with `fault`.
    public func arm(_ call: String, _ fault: Fault, times: Int = 1) {
        armed.withLock { $0[call] = (fault, times) }
    }

    /// Disarms every fault.
    public func disarm() { armed.withLock { $0.removeAll() } }

    private func fault(for call: String) -> Fault? {
        armed.withLock { armed in
            guard let entry = armed[call], entry.remaining > 0 else { return nil }
            armed[call] = (entry.fault, entry.remaining - 1)
            return entry.fault
        }
    }

    fileprivate func perform<T>(_ call: String, _ body: () async throws(CoordinationError) -> T)
        async throws(CoordinationError) -> T
    {
        switch fault(for: call) {
        case nil:
            return try await body()
        case .refuse:
            throw CoordinationError(.connectionFailed, "\(call): refused by the fault suite (never sent)")
        case .loseReply:
            _ = try await body()
            throw CoordinationError(.timeout, "\(call): reply lost by the fault suite (the call went through)")
        }
    }

    public var storeDescription: StoreDescription { base.storeDescription }
    public var limits: StoreLimits { base.limits }
    public var capabilities: StoreCapabilities { base.capabilities }
    public var taskExecutor: (any TaskExecutor)? { base.taskExecutor }

    public func run() async throws { try await base.run() }
    public func close() async { await base.close() }

    public func get(_ key: Key) async throws(CoordinationError) -> Entry? { try await base.get(key) }
    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        try await base.put(key, value, options: options)
    }
    public func delete(_ key: Key) async throws(CoordinationError) { try await base.delete(key) }
    public func exists(_ key: Key) async throws(CoordinationError) -> Bool { try await base.exists(key) }
    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] { try await base.list(prefix) }
    public func deleteTree(_ prefix: Key) async throws(CoordinationError) { try await base.deleteTree(prefix) }
    public func atomicPut(_ key: Key, _ value: [UInt8], condition: PutCondition, options: PutOptions)
        async throws(CoordinationError) -> Entry
    {
        try await perform("atomicPut") { () async throws(CoordinationError) in
            try await base.atomicPut(key, value, condition: condition, options: options)
        }
    }
    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        try await perform("atomicDelete") { () async throws(CoordinationError) in
            try await base.atomicDelete(key, revision: revision)
        }
    }
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream { try await base.watch(key) }
    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try await base.watchTree(prefix)
    }
    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try await base.makeSession(ttl: ttl)
    }
    public func revokeSession(_ id: SessionID) async throws(CoordinationError) { try await base.revokeSession(id) }
    public func waitUntilGone(_ key: Key, createdAt createRevision: Revision?, session: SessionID?)
        async throws(CoordinationError)
    {
        try await perform("waitUntilGone") { () async throws(CoordinationError) in
            try await base.waitUntilGone(key, createdAt: createRevision, session: session)
        }
    }
}

extension LostReplyStore {
    /// The wrapped store's line, with the same faults: `joinLine` arms the join, `atomicDelete`
    /// a contender's leaving, `waitUntilGone` the wait for the one ahead.
    public struct Line: ContenderLine {
        public let store: LostReplyStore
        let base: any ContenderLine

        public func join(_ prefix: Key, role: ContenderRole, value: [UInt8], session: Session)
            async throws(CoordinationError) -> LineJoin
        {
            try await store.perform("joinLine") { () async throws(CoordinationError) in
                try await base.join(prefix, role: role, value: value, session: session)
            }
        }
        public func place(of contender: Contender, in prefix: Key) async throws(CoordinationError) -> LinePlace? {
            try await base.place(of: contender, in: prefix)
        }
        public func leave(_ contender: Contender) async throws(CoordinationError) {
            try await store.perform("atomicDelete") { () async throws(CoordinationError) in
                try await base.leave(contender)
            }
        }
        public func contenders(in prefix: Key) async throws(CoordinationError) -> [Contender] {
            try await base.contenders(in: prefix)
        }
        public func contenders(in prefix: Key, from entries: [Entry]) -> [Contender] {
            base.contenders(in: prefix, from: entries)
        }
    }

    public var line: Line { Line(store: self, base: base.line) }
}
