import Logging
import Synchronization

/// Keeps a store's sessions alive by the ``RenewalSchedule`` rule and moves each through alive →
/// suspended → expired, publishing every acknowledged keep-alive as the session's
/// ``Session/guaranteedUntil`` at once. The one keeper loop of the backends that renew sessions
/// themselves: a backend supplies only its keep-alive call.
///
/// - A backend that renews by request (Consul, etcd v2) calls ``run(renew:)`` with its call; at
///   most one keep-alive per session is in flight.
/// - A backend that renews over a stream (etcd) calls ``runTimer(send:)``, sends each keep-alive
///   on its stream, reports answers with ``acknowledge(_:ttl:)``, and says when the stream opens
///   and breaks (``streamOpened()``, ``streamBroke()``).
@_spi(Backend)
public final class SessionRenewer<ID: Hashable & Comparable & Sendable & CustomStringConvertible>: Sendable {
    /// The answer to one keep-alive sent by request.
    public enum Outcome: Sendable {
        /// Acknowledged; the server holds the session for `ttl` from the send (`nil`: the granted TTL).
        case renewed(ttl: Duration?)
        /// The server says the session is gone.
        case gone
        /// Not delivered, or no usable answer.
        case failed(String)
    }

    private struct State {
        var schedule: RenewalSchedule<ID, ContinuousClock.Instant>
        var sessions: [ID: Session] = [:]
        var canSend: Bool
    }

    private let state: Mutex<State>
    private let wake = WakeSignal()
    private let logger: Logger
    private let retryDelay: Duration
    /// What a session is called in log lines ("lease", "session").
    private let noun: String

    /// - Parameters:
    ///   - streamed: keep-alives travel on a stream the backend opens (several may be outstanding,
    ///     none is sent while no stream is open); otherwise one request per keep-alive.
    ///   - retryDelay: how soon a failed keep-alive (or one that found no open stream) is retried.
    private let onLate: (@Sendable (Duration) -> Void)?

    /// `onLate` is told, with the session's TTL, when a keep-alive is late (its session suspended
    /// with less than half its TTL guaranteed): a backend whose keep-alives share a connection
    /// checks then whether the member behind it still answers.
    public init(
        noun: String, logger: Logger, streamed: Bool = false, retryDelay: Duration = .milliseconds(200),
        onLate: (@Sendable (Duration) -> Void)? = nil
    ) {
        self.state = Mutex(State(schedule: RenewalSchedule(oneInFlight: !streamed), canSend: !streamed))
        self.noun = noun
        self.logger = logger
        self.retryDelay = retryDelay
        self.onLate = onLate
    }

    // MARK: Bookkeeping

    /// Starts keeping `id` alive; `requestedAt` is when the request that created it was sent.
    public func add(_ id: ID, session: Session, ttl: Duration, requestedAt: ContinuousClock.Instant) {
        session.extendGuarantee(until: requestedAt.advanced(by: ttl))
        state.withLock { state in
            state.schedule.add(id, ttl: ttl, requestedAt: requestedAt)
            state.sessions[id] = session
        }
        wake.signal()
    }

    /// Stops keeping `id` alive (closed or revoked); returns its session if it was kept.
    @discardableResult
    public func remove(_ id: ID) -> Session? {
        state.withLock { state in
            state.schedule.remove(id)
            return state.sessions.removeValue(forKey: id)
        }
    }

    /// Stops renewing `id` without ending it; it is reported expired when its guarantee runs out.
    public func abandon(_ id: ID) {
        state.withLock { $0.schedule.abandon(id) }
        wake.signal()
    }

    /// Reports `id` expired now (the server said so).
    public func expire(_ id: ID) {
        remove(id)?.transition(to: .expired)
    }

    public func session(_ id: ID) -> Session? { state.withLock { $0.sessions[id] } }

    /// Every kept session, for closing the store.
    public func allSessions() -> [(id: ID, session: Session)] {
        state.withLock { state in state.sessions.map { (id: $0.key, session: $0.value) } }
    }

    // MARK: Running

    /// Runs the timer until cancelled, sending each due keep-alive with `renew` (one request each,
    /// concurrently across sessions).
    public func run(renew: @escaping @Sendable (ID) async -> Outcome) async {
        await withDiscardingTaskGroup { group in
            await runTimer { id in
                group.addTask { self.record(id, await renew(id)) }
            }
            group.cancelAll()
        }
    }

    /// Runs the timer until cancelled; `send` puts one keep-alive on the open stream (it must not
    /// block). Answers come back through ``acknowledge(_:ttl:)``.
    public func runTimer(send: (ID) -> Void) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (actions, sessions, next) = state.withLock { state in
                let actions = state.schedule.tick(
                    now: now, canSend: state.canSend, retryDelay: retryDelay, coalescing: true)
                for id in actions.renew { state.schedule.sent(id, at: now) }
                var sessions: [ID: Session] = [:]
                for id in actions.suspend + actions.expire { sessions[id] = state.sessions[id] }
                for id in actions.expire { state.sessions.removeValue(forKey: id) }
                return (actions, sessions, state.schedule.nextDeadline())
            }
            for id in actions.renew { send(id) }
            for id in actions.suspend {
                logger.info("\(noun) keep-alive unanswered: suspended", metadata: [noun: "\(id)"])
                sessions[id]?.transition(to: .suspended)
            }
            if let onLate, let shortest = actions.suspend.compactMap({ sessions[$0]?.ttl }).min() { onLate(shortest) }
            for id in actions.expire {
                logger.info("\(noun) expired (no acknowledged keep-alive within its TTL)", metadata: [noun: "\(id)"])
                sessions[id]?.transition(to: .expired)
            }
            if let next {
                await wake.wait(orUntil: { try? await Task.sleep(until: next, clock: .continuous) })
            } else {
                await wake.wait()
            }
        }
    }

    /// The server answered the oldest outstanding keep-alive of `id`: held for `ttl` from its send
    /// (`nil`: the granted TTL); zero or less means it says the session is gone.
    public func acknowledge(_ id: ID, ttl: Duration?) {
        let (result, session, guaranteedUntil) = state.withLock { state in
            (
                state.schedule.acknowledge(id, ttl: ttl, now: .now), state.sessions[id],
                state.schedule.tracked[id]?.guaranteedUntil
            )
        }
        // Published before anything else: a holder's next `isActive` counts from this keep-alive.
        if result.alive, let guaranteedUntil { session?.extendGuarantee(until: guaranteedUntil) }
        if !result.alive {
            logger.info("the server reports the \(noun) gone", metadata: [noun: "\(id)"])
            expire(id)
        } else if result.recovered {
            session?.transition(to: .alive)
        }
    }

    /// A keep-alive stream is open: keep-alives may be sent.
    public func streamOpened() { streamChanged(canSend: true) }

    /// The keep-alive stream broke: the keep-alives on it will not be answered.
    public func streamBroke() { streamChanged(canSend: false) }

    /// Either way, keep-alives outstanding on the old stream will not be answered: their sessions
    /// are suspended, and every session is renewed at once on the next stream.
    private func streamChanged(canSend: Bool) {
        let (ids, sessions) = state.withLock { state in
            state.canSend = canSend
            let ids = state.schedule.streamReset(now: .now)
            return (ids, ids.compactMap { state.sessions[$0] })
        }
        if !ids.isEmpty {
            logger.info("\(noun) keep-alive stream broke with keep-alives unanswered: suspended")
        }
        for session in sessions { session.transition(to: .suspended) }
        wake.signal()
    }

    private func record(_ id: ID, _ outcome: Outcome) {
        switch outcome {
        case .renewed(let ttl):
            acknowledge(id, ttl: ttl)
        case .gone:
            logger.info("the server reports the \(noun) gone", metadata: [noun: "\(id)"])
            expire(id)
        case .failed(let reason):
            logger.info("\(noun) keep-alive failed; retrying", metadata: [noun: "\(id)", "error": "\(reason)"])
            let (suspended, session) = state.withLock { state in
                (state.schedule.failed(id, now: .now, retryDelay: retryDelay), state.sessions[id])
            }
            if suspended { session?.transition(to: .suspended) }
        }
        wake.signal()
    }
}
