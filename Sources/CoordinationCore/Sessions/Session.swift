import Synchronization

/// Where a session stands.
///
/// `alive` → `suspended` (contact lost; the server may still hold it) → `expired` (the server has,
/// or must be assumed to have, ended it). `closed` is the end its owner chose. `expired` and
/// `closed` are terminal.
public enum SessionState: Sendable, Hashable, CustomStringConvertible {
    case alive
    case suspended
    case expired
    case closed

    /// Whether the session has ended for good.
    public var isTerminal: Bool { self == .expired || self == .closed }

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspended: "suspended"
        case .expired: "expired"
        case .closed: "closed"
        }
    }
}

/// What a backend does for a ``Session``. Implemented by every backend; users never call it.
public protocol SessionBackend: Sendable {
    /// Ends the session on the server and releases every key bound to it.
    func closeSession(_ id: SessionID) async throws(CoordinationError)
    /// Stops renewing the session without ending it, as a crashed process would.
    func abandonSession(_ id: SessionID)
}

/// A lease on the store that binds keys to the life of this client.
///
/// The store keeps a session alive by itself (etcd lease keep-alives, ZooKeeper pings, Consul
/// renewals, in-memory timers). Its ``state`` and ``states()`` tell what the client knows, by the
/// safety rule: it reports `expired` no later than ``ttl`` after the last keep-alive the server
/// acknowledged, so a holder learns of a loss before another client can be granted what it held.
public final class Session: Sendable, Hashable, CustomStringConvertible {
    /// The backend's identity of this session.
    public let id: SessionID
    /// The time-to-live the server granted.
    public let ttl: Duration
    private let backend: any SessionBackend
    private let broadcast: StateBroadcast<SessionState>
    private let abandoned = Atomic<Bool>(false)

    /// For backends: a new session in the `alive` state.
    public init(id: SessionID, ttl: Duration, backend: any SessionBackend) {
        self.id = id
        self.ttl = ttl
        self.backend = backend
        self.broadcast = StateBroadcast(.alive, isTerminal: { $0.isTerminal })
    }

    /// The state as of now.
    public var state: SessionState { broadcast.value }

    /// Whether keys bound to this session can still be expected to exist.
    public var isActive: Bool { !broadcast.value.isTerminal }

    /// The current state, then every change; finishes after a terminal state.
    public func states() -> AsyncStream<SessionState> { broadcast.stream() }

    /// Waits until the session has ended (expired or closed) and returns how it ended; `nil` if the
    /// calling task is cancelled first.
    public func waitUntilEnded() async -> SessionState? {
        await broadcast.wait(until: { $0.isTerminal })
    }

    /// Ends the session: every key bound to it is removed. Idempotent.
    public func close() async throws(CoordinationError) {
        guard isActive else { return }
        defer { broadcast.set(.closed) }
        try await backend.closeSession(id)
    }

    /// Stops keeping the session alive without ending it, exactly as if this process had crashed:
    /// the server ends it one TTL later and its keys go then. For failure testing and drills.
    ///
    /// Recipes leave an abandoned session alone when they stop (no resign, no deregistration), so a
    /// drill sees exactly what a crash would cause.
    public func abandon() {
        abandoned.store(true, ordering: .relaxed)
        backend.abandonSession(id)
    }

    /// Whether ``abandon()`` was called.
    public var isAbandoned: Bool { abandoned.load(ordering: .relaxed) }

    /// For backends: records a state change. Transitions out of a terminal state are ignored.
    @discardableResult
    public func transition(to newState: SessionState) -> Bool {
        broadcast.set(newState)
    }

    /// Throws ``CoordinationError/Code/sessionExpired`` or ``CoordinationError/Code/sessionClosed``
    /// if the session has ended.
    public func checkActive() throws(CoordinationError) {
        switch state {
        case .expired: throw CoordinationError(.sessionExpired, "session \(id) has expired")
        case .closed: throw CoordinationError(.sessionClosed, "session \(id) was closed")
        case .alive, .suspended: return
        }
    }

    public static func == (lhs: Session, rhs: Session) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "Session(\(id), ttl: \(ttl), \(state))" }
}
