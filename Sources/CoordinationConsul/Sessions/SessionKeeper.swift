import CoordinationCore
import Logging
import Synchronization

/// Keeps every Consul session of one store alive (`PUT /v1/session/renew/<id>` every TTL/2) and
/// moves each through alive → suspended → expired by the ``SessionSchedule`` safety rule.
final class SessionKeeper: Sendable {
    enum RenewResult: Sendable {
        case renewed
        /// Consul answered 404: the session was invalidated.
        case gone
        case failed(CoordinationError)
    }

    private struct State {
        var schedule = SessionSchedule<ContinuousClock.Instant>()
        var sessions: [String: Session] = [:]
    }

    private let state = Mutex(State())
    private let wake = WakeSignal()
    private let logger: Logger
    private let retryDelay: Duration

    init(logger: Logger, retryDelay: Duration = .milliseconds(200)) {
        self.logger = logger
        self.retryDelay = retryDelay
    }

    func add(_ session: Session, requestedAt: ContinuousClock.Instant) {
        state.withLock { state in
            state.schedule.add(session.id.rawValue, ttl: session.ttl, requestedAt: requestedAt)
            state.sessions[session.id.rawValue] = session
        }
        wake.signal()
    }

    @discardableResult
    func remove(_ id: String) -> Session? {
        state.withLock { state in
            state.schedule.remove(id)
            return state.sessions.removeValue(forKey: id)
        }
    }

    func abandon(_ id: String) {
        state.withLock { $0.schedule.abandon(id) }
        wake.signal()
    }

    /// Reports `id` expired now (the server said so).
    func expire(_ id: String) {
        remove(id)?.transition(to: .expired)
    }

    func session(_ id: String) -> Session? { state.withLock { $0.sessions[id] } }

    func allSessions() -> [Session] { state.withLock { Array($0.sessions.values) } }

    /// Runs the renewal timer until cancelled; `renew` performs one renew request.
    func run(renew: @escaping @Sendable (String) async -> RenewResult) async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let now = ContinuousClock.now
                let (actions, sessions, next) = state.withLock { state in
                    let actions = state.schedule.tick(now: now)
                    var sessions: [String: Session] = [:]
                    for id in actions.suspend + actions.expire { sessions[id] = state.sessions[id] }
                    for id in actions.expire { state.sessions.removeValue(forKey: id) }
                    return (actions, sessions, state.schedule.nextDeadline())
                }
                for id in actions.renew {
                    group.addTask {
                        let result = await renew(id)
                        self.record(id, sentAt: now, result)
                    }
                }
                for id in actions.suspend {
                    logger.info("session renewal overdue: suspended", metadata: ["session": "\(id)"])
                    sessions[id]?.transition(to: .suspended)
                }
                for id in actions.expire {
                    logger.info(
                        "session expired (no acknowledged renewal within its TTL)", metadata: ["session": "\(id)"])
                    sessions[id]?.transition(to: .expired)
                }
                if let next {
                    await withTaskGroup(of: Void.self) { timer in
                        timer.addTask { try? await Task.sleep(until: next, clock: .continuous) }
                        timer.addTask { await self.wake.wait() }
                        await timer.next()
                        timer.cancelAll()
                    }
                } else {
                    await wake.wait()
                }
            }
            group.cancelAll()
        }
    }

    private func record(_ id: String, sentAt: ContinuousClock.Instant, _ result: RenewResult) {
        switch result {
        case .renewed:
            let (recovered, session, guaranteedUntil) = state.withLock { state in
                (
                    state.schedule.renewed(id, sentAt: sentAt, now: .now), state.sessions[id],
                    state.schedule.sessions[id]?.guaranteedUntil
                )
            }
            if let guaranteedUntil { session?.extendGuarantee(until: guaranteedUntil) }
            if recovered { session?.transition(to: .alive) }
        case .gone:
            logger.info("Consul reports the session invalidated", metadata: ["session": "\(id)"])
            expire(id)
        case .failed(let error):
            logger.info("session renewal failed; retrying", metadata: ["session": "\(id)", "error": "\(error)"])
            state.withLock { $0.schedule.renewFailed(id, now: .now, retryDelay: retryDelay) }
        }
        wake.signal()
    }
}
