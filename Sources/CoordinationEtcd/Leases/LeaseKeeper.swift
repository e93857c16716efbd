import CoordinationCore
import Logging
import SwiftProtobuf
import Synchronization

/// Keeps every lease of one store alive over a single `LeaseKeepAlive` stream, renewing each at a
/// third of its TTL, and moves each session through alive → suspended → expired by the
/// ``LeaseSchedule`` safety rule. The stream is reopened after a failure; while it is down the
/// schedule keeps counting, so a partition ends in `expired` on time.
final class LeaseKeeper: Sendable {
    private struct State {
        var schedule = LeaseSchedule<ContinuousClock.Instant>()
        var sessions: [Int64: Session] = [:]
        var outbox: AsyncStream<Etcdserverpb_LeaseKeepAliveRequest>.Continuation?
    }

    private let state = Mutex(State())
    private let wake = WakeSignal()
    private let logger: Logger
    private let reconnectDelay: Duration

    init(logger: Logger, reconnectDelay: Duration = .milliseconds(200)) {
        self.logger = logger
        self.reconnectDelay = reconnectDelay
    }

    /// Starts keeping `id` alive; `requestedAt` is when the grant request was sent.
    func add(_ id: Int64, session: Session, ttl: Duration, requestedAt: ContinuousClock.Instant) {
        state.withLock { state in
            state.schedule.add(id, ttl: ttl, requestedAt: requestedAt)
            state.sessions[id] = session
        }
        wake.signal()
    }

    /// Stops tracking `id` (closed or revoked); returns its session if it was tracked.
    @discardableResult
    func remove(_ id: Int64) -> Session? {
        state.withLock { state in
            state.schedule.remove(id)
            return state.sessions.removeValue(forKey: id)
        }
    }

    /// Stops renewing `id`; it is reported expired when its guaranteed time runs out.
    func abandon(_ id: Int64) {
        state.withLock { $0.schedule.abandon(id) }
        wake.signal()
    }

    /// Reports `id` expired now (the server said so).
    func expire(_ id: Int64) {
        remove(id)?.transition(to: .expired)
    }

    /// Every tracked session, for closing the store.
    func allSessions() -> [(Int64, Session)] {
        state.withLock { state in state.sessions.map { ($0.key, $0.value) } }
    }

    /// Runs the renewal timer and the keep-alive stream until cancelled.
    func run(transport: EtcdTransport, metadata: @escaping @Sendable () async throws -> [(String, String)]) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.runTimer() }
            group.addTask { await self.runStream(transport: transport, metadata: metadata) }
        }
    }

    private func runTimer() async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (actions, sessions, outbox, next) = state.withLock { state in
                let actions = state.schedule.tick(now: now, canSend: state.outbox != nil, retryDelay: reconnectDelay)
                for id in actions.renew { state.schedule.sent(id, at: now) }
                var sessions: [Int64: Session] = [:]
                for id in actions.suspend + actions.expire { sessions[id] = state.sessions[id] }
                for id in actions.expire { state.sessions.removeValue(forKey: id) }
                return (actions, sessions, state.outbox, state.schedule.nextDeadline())
            }
            for id in actions.renew { outbox?.yield(.with { $0.id = id }) }
            for id in actions.suspend {
                logger.info(
                    "lease keep-alive unacknowledged: session suspended",
                    metadata: ["lease": "\(SessionID(leaseID: id))"])
                sessions[id]?.transition(to: .suspended)
            }
            for id in actions.expire {
                logger.info("lease expired", metadata: ["lease": "\(SessionID(leaseID: id))"])
                sessions[id]?.transition(to: .expired)
            }
            if let next {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await Task.sleep(until: next, clock: .continuous) }
                    group.addTask { await self.wake.wait() }
                    await group.next()
                    group.cancelAll()
                }
            } else {
                await wake.wait()
            }
        }
    }

    private func runStream(
        transport: EtcdTransport,
        metadata: @Sendable () async throws -> [(String, String)]
    ) async {
        while !Task.isCancelled {
            let (requests, outbox) = AsyncStream<Etcdserverpb_LeaseKeepAliveRequest>.makeStream()
            do {
                let stream = try await transport.openStream(
                    "/etcdserverpb.Lease/LeaseKeepAlive", metadata: try await metadata(),
                    requests: Etcdserverpb_LeaseKeepAliveRequest.self,
                    responses: Etcdserverpb_LeaseKeepAliveResponse.self)
                state.withLock { state in
                    state.schedule.streamReset(now: .now)
                    state.outbox = outbox
                }
                wake.signal()
                try await stream.exchange(requests) { message in
                    self.acknowledge(message)
                }
            } catch {
                if !Task.isCancelled {
                    logger.info("lease keep-alive stream failed; reopening", metadata: ["error": "\(error)"])
                }
            }
            state.withLock { $0.outbox = nil }
            outbox.finish()
            if Task.isCancelled { return }
            try? await Task.sleep(for: reconnectDelay)
        }
    }

    private func acknowledge(_ message: Etcdserverpb_LeaseKeepAliveResponse) {
        let id = message.id
        let (result, session, guaranteedUntil) = state.withLock { state in
            (
                state.schedule.acknowledge(id, ttlSeconds: message.ttl, now: .now), state.sessions[id],
                state.schedule.leases[id]?.guaranteedUntil
            )
        }
        // Published before anything else: a holder's next `isActive` counts from this keep-alive.
        if result.alive, let guaranteedUntil { session?.extendGuarantee(until: guaranteedUntil) }
        if !result.alive {
            logger.info("etcd reports the lease gone", metadata: ["lease": "\(SessionID(leaseID: id))"])
            expire(id)
        } else if result.recovered {
            session?.transition(to: .alive)
        }
    }
}
