@_spi(Backend) import CoordinationCore
import Logging
import SwiftProtobuf
import Synchronization

/// Keeps every lease of one store alive over a single `LeaseKeepAlive` stream: the core's
/// ``SessionRenewer`` decides when each keep-alive is due and what each session's state is (the one
/// renewal rule, ``RenewalSchedule``); this keeper only carries the keep-alives and their answers.
/// The stream is reopened after a failure; while it is down the schedule keeps counting, so a
/// partition ends in `expired` on time.
final class LeaseKeeper: Sendable {
    private let renewer: SessionRenewer<Int64>
    private let outbox = Mutex<AsyncStream<Etcdserverpb_LeaseKeepAliveRequest>.Continuation?>(nil)
    private let logger: Logger
    private let reconnectDelay: Duration

    /// `onLate` is told (with the lease's TTL) when a keep-alive goes unanswered for long: the
    /// store then checks that the member carrying the stream still answers, and leaves it if not,
    /// while the lease still has time.
    init(
        logger: Logger, reconnectDelay: Duration = .milliseconds(200), onLate: (@Sendable (Duration) -> Void)? = nil
    ) {
        self.logger = logger
        self.reconnectDelay = reconnectDelay
        self.renewer = SessionRenewer(
            noun: "lease", logger: logger, streamed: true, retryDelay: reconnectDelay, onLate: onLate)
    }

    /// Starts keeping `id` alive; `requestedAt` is when the grant request was sent.
    func add(_ id: Int64, session: Session, ttl: Duration, requestedAt: ContinuousClock.Instant) {
        renewer.add(id, session: session, ttl: ttl, requestedAt: requestedAt)
    }

    /// Stops tracking `id` (closed or revoked); returns its session if it was tracked.
    @discardableResult
    func remove(_ id: Int64) -> Session? { renewer.remove(id) }

    /// Stops renewing `id`; it is reported expired when its guaranteed time runs out.
    func abandon(_ id: Int64) { renewer.abandon(id) }

    /// Reports `id` expired now (the server said so).
    func expire(_ id: Int64) { renewer.expire(id) }

    /// Every tracked session, for closing the store.
    func allSessions() -> [(Int64, Session)] { renewer.allSessions().map { ($0.id, $0.session) } }

    /// Runs the renewal timer and the keep-alive stream until cancelled.
    func run(transport: EtcdTransport, metadata: @escaping @Sendable () async throws -> [(String, String)]) async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await self.renewer.runTimer { id in
                    _ = self.outbox.withLock { $0 }?.yield(.with { $0.id = id })
                }
            }
            group.addTask { await self.runStream(transport: transport, metadata: metadata) }
        }
    }

    private func runStream(
        transport: EtcdTransport,
        metadata: @Sendable () async throws -> [(String, String)]
    ) async {
        while !Task.isCancelled {
            let (requests, outbox) = AsyncStream<Etcdserverpb_LeaseKeepAliveRequest>.makeStream()
            var failure: (any Error)?
            var opened = false
            do {
                let stream = try await transport.openStream(
                    "/etcdserverpb.Lease/LeaseKeepAlive", metadata: try await metadata(),
                    requests: Etcdserverpb_LeaseKeepAliveRequest.self,
                    responses: Etcdserverpb_LeaseKeepAliveResponse.self)
                self.outbox.withLock { $0 = outbox }
                renewer.streamOpened()
                opened = true
                try await stream.exchange(requests) { message in
                    self.renewer.acknowledge(message.id, ttl: .seconds(message.ttl))
                }
            } catch {
                failure = error
            }
            self.outbox.withLock { $0 = nil }
            if opened { renewer.streamBroke() }
            outbox.finish()
            if Task.isCancelled { return }
            await transport.pauseBeforeReopening(
                "lease keep-alive", after: failure, delay: reconnectDelay, logger: logger)
        }
    }
}
