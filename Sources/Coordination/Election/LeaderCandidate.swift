@_spi(Backend) import CoordinationCore
import Logging
import ServiceLifecycle
import Synchronization

/// A long-running candidate in an ``Election``: campaigns, leads, steps down, and campaigns again.
///
/// A `Service`: run it in a `ServiceGroup` or call ``run()`` in a task. It opens its own session, and
/// after a session loss it opens a new one and rejoins the line. Observe where it stands with
/// ``statuses()``: leadership always comes with its term (fencing token).
///
/// ```swift
/// let candidate = LeaderCandidate(election: try Key("elections/scheduler"), value: Array("node-1".utf8), store: store)
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await candidate.run() }
///     for await status in candidate.statuses() {
///         if case .leader(let term) = status { print("leading in term \(term)") }
///     }
/// }
/// ```
public final class LeaderCandidate: Service, Sendable {
    /// Where the candidate stands.
    public enum Status: Sendable, Hashable, CustomStringConvertible {
        /// Not running yet.
        case idle
        /// In line, waiting to lead.
        case campaigning
        /// Leading, in the given term.
        case leader(term: FencingToken)
        /// Shutting down (cancelled, or graceful shutdown): resigning and ending its session.
        case stopping
        /// Stopped for good (``run()`` returned).
        case stopped

        public var isLeader: Bool {
            if case .leader = self { return true }
            return false
        }

        public var description: String {
            switch self {
            case .idle: "idle"
            case .campaigning: "campaigning"
            case .leader(let term): "leader(term \(term))"
            case .stopping: "stopping"
            case .stopped: "stopped"
            }
        }
    }

    private struct State {
        var value: [UInt8]
        var leadership: Leadership?
        var resignRequested = false
    }

    public let election: Election
    /// The TTL of each session; by default the store's `limits.defaultSessionTTL` (10 s on most
    /// stores; on ZooKeeper the follower bound plus 10 s).
    public let sessionTTL: Duration
    /// How long to wait before trying again after a store error.
    public let retryDelay: Duration
    private let logger: Logger
    private let state: Mutex<State>
    private let broadcast = StateBroadcast<Status>(.idle, isTerminal: { $0 == .stopped })

    public init(
        election: Key,
        value: [UInt8],
        store: any KeyValueStore,
        sessionTTL: Duration? = nil,
        retryDelay: Duration = .milliseconds(500),
        logger: Logger = Logger(label: "swift-coordination.leader")
    ) {
        self.election = Election(election, store: store)
        self.sessionTTL = sessionTTL ?? store.limits.defaultSessionTTL
        self.retryDelay = retryDelay
        self.logger = logger
        self.state = Mutex(State(value: value))
    }

    /// The status now.
    ///
    /// A leader whose session has ended is reported as campaigning at once, even before the
    /// candidate's own task has reacted: the session learns of a loss before any other candidate
    /// can be elected (the safety rule, docs/architecture.md 3.5), and so does this property.
    public var status: Status {
        let status = broadcast.value
        if status.isLeader, let session = leadership?.session, !session.isActive { return .campaigning }
        return status
    }

    /// The current status, then every change; finishes after ``Status/stopped``, when the
    /// candidate's ``run()`` has returned.
    ///
    /// In a `ServiceGroup`, a service that reads this stream belongs *after* the candidate in the
    /// group's list: the group shuts services down in reverse order, so the reader is told to stop
    /// first (read with `cancelOnGracefulShutdown()`), and never sees the stream end while it is
    /// still expected to run (the group would report "a service has finished unexpectedly").
    public func statuses() -> AsyncStream<Status> { broadcast.stream() }

    /// The current leadership, while leading.
    public var leadership: Leadership? { state.withLock { $0.leadership } }

    /// Steps down if leading; the candidate then rejoins the line at its end.
    public func resign() async throws(CoordinationError) {
        let leadership: Leadership? = state.withLock { state in
            guard let leadership = state.leadership else { return nil }
            state.resignRequested = true
            return leadership
        }
        guard let leadership else { return }
        do {
            try await leadership.resign()
        } catch  where error.code == .notHolder {
            // Already lost: nothing to give up.
        }
    }

    /// Changes the value followers see; takes effect at once while leading, else at the next campaign.
    public func update(value: [UInt8]) async throws(CoordinationError) {
        let leadership = state.withLock { state in
            state.value = value
            return state.leadership
        }
        try await leadership?.proclaim(value)
    }

    /// Campaigns until cancelled (or until graceful shutdown), then resigns and closes its session.
    ///
    /// Throws, instead of retrying, what can never succeed: a session TTL or value the store
    /// refuses (`invalidArgument`, `valueTooLarge`), and a closed store (`storeClosed`). Store
    /// outages are retried every ``retryDelay`` (with jitter) and logged at warning level.
    public func run() async throws {
        defer { broadcast.set(.stopped) }
        try await cancelWhenGracefulShutdown {
            try await self.campaignForever()
        }
    }

    /// Errors that retrying cannot cure.
    private static func isFinal(_ error: CoordinationError) -> Bool {
        [.storeClosed, .invalidArgument, .invalidKey, .valueTooLarge].contains(error.code)
    }

    /// `.campaigning`, or `.stopping` once the candidate is shutting down.
    private func reportNotLeading() {
        broadcast.set(Task.isCancelled ? .stopping : .campaigning)
    }

    private func campaignForever() async throws {
        let store = election.store
        while !Task.isCancelled {
            let session: Session
            do {
                session = try await store.makeSession(ttl: sessionTTL)
            } catch {
                if Self.isFinal(error) { throw error }
                if Task.isCancelled { return }
                logger.warning(
                    "cannot open a session, retrying", metadata: ["election": "\(election.name)", "error": "\(error)"])
                try? await Task.sleep(for: retryDelay.jittered())
                continue
            }
            do {
                try await campaign(in: session)
            } catch let error as CoordinationError where Self.isFinal(error) {
                await shielded { try? await session.close() }
                throw error
            } catch {
                if !Task.isCancelled {
                    logger.warning(
                        "campaign interrupted", metadata: ["election": "\(election.name)", "error": "\(error)"])
                }
            }
            if !session.isAbandoned {
                await shielded { try? await session.close() }
            }
            if broadcast.value != .stopped {
                reportNotLeading()
            }
        }
    }

    /// Campaigns with one session until it ends or the task is cancelled.
    private func campaign(in session: Session) async throws {
        while session.isActive && !Task.isCancelled {
            reportNotLeading()
            let value = state.withLock { $0.value }
            let leadership = try await election.campaign(value: value, session: session)
            state.withLock { state in
                state.leadership = leadership
                state.resignRequested = false
            }
            broadcast.set(.leader(term: leadership.term))
            logger.info("elected", metadata: ["election": "\(election.name)", "term": "\(leadership.term)"])
            let reason = await leadership.lost()
            let resigned = state.withLock { state in
                state.leadership = nil
                return state.resignRequested
            }
            if reason == nil {
                // Cancelled while leading: step down so the next in line takes over at once
                // (unless the session was abandoned in a drill: a crashed leader resigns nothing).
                reportNotLeading()
                if !session.isAbandoned {
                    await shielded { try? await leadership.resign() }
                }
                return
            }
            reportNotLeading()
            if !resigned { leadership.recordLoss() }
            if session.isActive {
                // Lost with the session alive (its key removed by someone): make sure no key of
                // this leadership is left, or the next campaign would queue behind itself.
                let logger = self.logger
                await shielded {
                    do {
                        try await leadership.resign()
                    } catch let error as CoordinationError where error.code == .notHolder {
                        // Gone already: nothing left behind.
                    } catch {
                        // resign() has ended the session, so the key goes with it.
                        logger.warning("could not remove the lost leadership's key", metadata: ["error": "\(error)"])
                    }
                }
            }
            if resigned {
                logger.info("resigned", metadata: ["election": "\(election.name)", "term": "\(leadership.term)"])
            } else {
                logger.info("leadership lost", metadata: ["election": "\(election.name)", "reason": "\(reason!)"])
            }
        }
    }
}
