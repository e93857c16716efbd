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
/// safety rule: it reports `expired` no later than ``ttl`` after the *send time* of the last
/// keep-alive the server acknowledged, so a holder learns of a loss before another client can be
/// granted what it held.
///
/// That instant is ``guaranteedUntil``. ``state``, ``isActive`` and ``checkActive()`` compare it with
/// the monotonic clock each time they are asked, so the answer is right even when the process was
/// paused (a GC pause, SIGSTOP, a VM freeze) and the store's timers have not run since.
public final class Session: Sendable, Hashable, CustomStringConvertible {
    /// The backend's identity of this session.
    public let id: SessionID
    /// The time-to-live the server granted.
    public let ttl: Duration
    private let backend: any SessionBackend
    private let broadcast: StateBroadcast<SessionState>
    private let abandoned = Atomic<Bool>(false)
    /// ``guaranteedUntil`` as nanoseconds after ``SessionDeadlineClock/origin``; `Int64.max`: none.
    private let deadline: Atomic<Int64>
    /// The backend's name, for the session metrics.
    private let backendName: String

    /// For backends: a new session in the `alive` state. `guaranteedUntil` is the instant the server
    /// holds it until at least (the grant request's send time plus the TTL); `nil` for a session
    /// that cannot end behind the client's back (the in-memory store ends its sessions itself).
    @_spi(Backend) public init(
        id: SessionID, ttl: Duration, backend: any SessionBackend, guaranteedUntil: ContinuousClock.Instant? = nil
    ) {
        self.id = id
        self.ttl = ttl
        self.backend = backend
        self.broadcast = StateBroadcast(.alive, isTerminal: { $0.isTerminal })
        self.deadline = Atomic(guaranteedUntil.map(SessionDeadlineClock.nanoseconds(at:)) ?? .max)
        self.backendName = (backend as? any KeyValueStore)?.storeDescription.backend ?? "unknown"
    }

    /// The instant until which the server is known to hold this session: the send time of the last
    /// acknowledged keep-alive plus the TTL. `nil` if the backend sets none (in-memory).
    public var guaranteedUntil: ContinuousClock.Instant? {
        let value = deadline.load(ordering: .acquiring)
        return value == .max ? nil : SessionDeadlineClock.instant(at: value)
    }

    /// For backends: a keep-alive sent at `sentAt` was acknowledged with `ttl`, so the server holds
    /// the session until at least `sentAt + ttl`. The guarantee only ever grows.
    @_spi(Backend) public func extendGuarantee(until instant: ContinuousClock.Instant) {
        let value = SessionDeadlineClock.nanoseconds(at: instant)
        var current = deadline.load(ordering: .relaxed)
        while current == .max || value > current {
            let (exchanged, original) = deadline.compareExchange(
                expected: current, desired: value, ordering: .acquiringAndReleasing)
            if exchanged {
                // The first guarantee is the grant itself; every later one is a renewal.
                if current != .max { Telemetry.count(Telemetry.Metric.sessionRenewals, [("backend", backendName)]) }
                return
            }
            current = original
        }
    }

    /// Whether the guarantee has run out at `now`, whatever the timers have reported.
    private func guaranteeRanOut(at now: ContinuousClock.Instant = .now) -> Bool {
        let value = deadline.load(ordering: .acquiring)
        return value != .max && SessionDeadlineClock.nanoseconds(at: now) >= value
    }

    /// The state as of now. Past ``guaranteedUntil`` this is `expired`, even if no timer has said so
    /// yet (and saying it here wakes everyone waiting for the end).
    public var state: SessionState {
        let value = broadcast.value
        if !value.isTerminal, guaranteeRanOut() {
            broadcast.set(.expired, didChange: countExpiry)
            return broadcast.value
        }
        return value
    }

    /// Whether keys bound to this session can still be expected to exist: not ended, and the
    /// monotonic clock has not passed ``guaranteedUntil``. Asked right before a guarded step, this
    /// is what makes "a holder learns of its loss first" hold across process pauses.
    public var isActive: Bool { !state.isTerminal }

    /// The current state, then every change; finishes after a terminal state.
    public func states() -> AsyncStream<SessionState> { broadcast.stream() }

    /// Waits until the session has ended (expired or closed) and returns how it ended; `nil` if the
    /// calling task is cancelled first.
    public func waitUntilEnded() async -> SessionState? {
        if state.isTerminal { return state }
        return await broadcast.wait(until: { $0.isTerminal })
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
    @_spi(Backend) public func transition(to newState: SessionState) -> Bool {
        broadcast.set(newState, didChange: countExpiry)
    }

    /// Counts a change to `expired`, before anyone waiting for the end sees it.
    private func countExpiry(_ state: SessionState) {
        if state == .expired { Telemetry.count(Telemetry.Metric.sessionExpiries, [("backend", backendName)]) }
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

/// The monotonic clock sessions measure their guarantee on, as whole nanoseconds after a fixed
/// origin (so the guarantee fits an atomic).
enum SessionDeadlineClock {
    static let origin = ContinuousClock.now

    static func nanoseconds(at instant: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = (instant - origin).components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min + 1 : .max - 1 }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min + 1 : .max - 1 }
        return min(sum, .max - 1)
    }

    static func instant(at nanoseconds: Int64) -> ContinuousClock.Instant {
        origin.advanced(by: .nanoseconds(nanoseconds))
    }
}
