@_spi(Backend) import CoordinationCore
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Keeps one ``ServiceInstance`` registered for as long as it runs.
///
/// A `Service`: the instance is written under `base/<name>/<id>`, bound to a session the store keeps
/// alive (the TTL heartbeat). If that session is lost — a long pause, a partition — the registration
/// opens a new session and registers again by itself. Cancelling ``run()`` (or graceful shutdown)
/// deregisters.
///
/// With `catalog: .nativeWhenAvailable` on a store that has a service catalog of its own
/// (`NativeServiceRegistry`, e.g. Consul's agent services), the instance is registered there
/// instead, with a TTL health check that this service passes every half `sessionTTL`; it is
/// registered again if the backend forgets it, and deregistered when the service stops. A native
/// catalog has no revisions: the status then reads `.registered(Revision(0))`, and
/// ``currentSession`` is `nil`.
public final class ServiceRegistration: Service, Sendable {
    /// Where the registration stands.
    public enum Status: Sendable, Hashable {
        case idle
        /// Registered, with the revision of the write.
        case registered(Revision)
        /// The session was lost; registering again.
        case reregistering
        case stopped
    }

    public let base: Key
    public let store: any KeyValueStore
    /// The TTL of each session; by default the store's `limits.defaultSessionTTL` (10 s on most
    /// stores; on ZooKeeper the follower bound plus 10 s).
    public let sessionTTL: Duration
    public let retryDelay: Duration
    /// Where the registration is kept.
    public let catalog: ServiceCatalog
    private let logger: Logger
    private let instance: Mutex<ServiceInstance>
    private let session = Mutex<Session?>(nil)
    private let broadcast = StateBroadcast<Status>(.idle, isTerminal: { $0 == .stopped })

    public init(
        _ instance: ServiceInstance,
        base: Key,
        store: any KeyValueStore,
        sessionTTL: Duration? = nil,
        retryDelay: Duration = .milliseconds(500),
        catalog: ServiceCatalog = .keyValue,
        logger: Logger = Logger(label: "swift-coordination.registration")
    ) {
        self.catalog = catalog
        self.instance = Mutex(instance)
        self.base = base
        self.store = store
        self.sessionTTL = sessionTTL ?? store.limits.defaultSessionTTL
        self.retryDelay = retryDelay
        self.logger = logger
    }

    public var status: Status { broadcast.value }
    public func statuses() -> AsyncStream<Status> { broadcast.stream() }

    /// The session currently carrying the registration (for drills: `abandon()` it to simulate a pause).
    public var currentSession: Session? { session.withLock { $0 } }

    /// Replaces the instance's metadata and rewrites the registration if it is live.
    public func update(metadata: [String: String]) async throws(CoordinationError) {
        let updated = instance.withLock { instance in
            instance.metadata = metadata
            return instance
        }
        if let native = nativeRegistry {
            if case .registered = status { try await native.registerService(updated.nativeRecord, ttl: sessionTTL) }
        } else if let session = currentSession, session.isActive {
            try await write(updated, session: session)
        }
    }

    /// Keeps the instance registered until cancelled (or until graceful shutdown), then
    /// deregisters.
    ///
    /// Throws, instead of retrying, what can never succeed: a session TTL or value the store
    /// refuses (`invalidArgument`, `valueTooLarge`), and a closed store (`storeClosed`). Store
    /// outages are retried with backoff (and jitter) and logged at warning level.
    public func run() async throws {
        defer { broadcast.set(.stopped) }
        try await cancelWhenGracefulShutdown {
            if let native = self.nativeRegistry {
                try await self.keepRegistered(in: native)
            } else {
                try await self.keepRegistered()
            }
        }
    }

    /// The store's own catalog, when asked for and offered.
    private var nativeRegistry: (any NativeServiceRegistry)? {
        catalog == .nativeWhenAvailable ? store as? any NativeServiceRegistry : nil
    }

    /// The native catalog: register with a TTL check, pass it every half TTL, register again if the
    /// backend forgot the instance, deregister on the way out.
    private func keepRegistered(in native: any NativeServiceRegistry) async throws {
        var registered = false
        while !Task.isCancelled {
            let current = instance.withLock { $0 }
            do {
                if registered {
                    try await native.passServiceCheck(id: current.id)
                } else {
                    try await native.registerService(current.nativeRecord, ttl: sessionTTL)
                    registered = true
                    broadcast.set(.registered(Revision(0)))
                }
            } catch {
                if Self.isFinal(error) { throw error }
                if Task.isCancelled { break }
                if registered {
                    registered = false
                    broadcast.set(.reregistering)
                }
                logger.warning("native registration failed, retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: retryDelay.jittered())
                continue
            }
            do {
                try await Task.sleep(for: sessionTTL / 2)
            } catch {
                break
            }
        }
        let id = instance.withLock { $0.id }
        await shielded { try? await native.deregisterService(id: id) }
    }

    /// How the key/value registration stopped being current.
    private enum Interruption: Sendable {
        case cancelled
        case sessionEnded
        case keyRemoved
    }

    /// The key/value layout: a session-bound key, written again whenever it goes.
    ///
    /// One session carries the registration for as long as it lives: a write the store refuses
    /// (Consul refuses a key that an invalidated session held until its lock-delay has passed) is
    /// retried on the same session with backoff, instead of a new session every retry. A key
    /// removed by someone else while the session lives is written again at once.
    private func keepRegistered() async throws {
        do {
            try await keepRegisteredOnSessions()
        } catch {
            await deregister(currentSession)
            throw error
        }
        await deregister(currentSession)
    }

    /// Deregisters by ending the session, which removes the key (a drill's abandoned session
    /// deregisters nothing, as a crashed process would).
    private func deregister(_ session: Session?) async {
        guard let session, !session.isAbandoned, session.isActive else { return }
        let logger = self.logger
        await shielded {
            do {
                try await session.close()
            } catch {
                logger.warning(
                    "could not end the registration's session; its key goes when it expires",
                    metadata: ["session": "\(session.id)", "error": "\(error)"])
            }
        }
    }

    private func keepRegisteredOnSessions() async throws {
        var failures = 0
        while !Task.isCancelled {
            let session: Session
            let entry: Entry?
            do {
                if let current = currentSession, current.isActive {
                    session = current
                } else {
                    session = try await store.makeSession(ttl: sessionTTL)
                    self.session.withLock { $0 = session }
                }
                entry = try await write(instance.withLock { $0 }, session: session)
                failures = 0
            } catch {
                if Self.isFinal(error) { throw error }
                if Task.isCancelled { return }
                logger.warning("registration failed, retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: backoff(failures))
                failures += 1
                continue
            }
            switch await waitWhileRegistered(entry, session: session) {
            case .cancelled:
                return
            case .sessionEnded:
                broadcast.set(.reregistering)
                logger.info("registration session ended, registering again", metadata: ["session": "\(session.id)"])
            case .keyRemoved:
                broadcast.set(.reregistering)
                logger.info("registration key was removed, registering again", metadata: ["session": "\(session.id)"])
            }
        }
    }

    /// The delay before retry `failures` (0 first): `retryDelay`, doubling, at most 2 s or half the
    /// TTL, whichever is less (never below `retryDelay`), so a registration is back within about a
    /// TTL plus Consul's lock-delay after a loss.
    private func backoff(_ failures: Int) -> Duration {
        let cap = max(retryDelay, min(.seconds(2), sessionTTL / 2))
        return min(retryDelay * (1 << min(failures, 6)), cap).jittered()
    }

    /// Errors that retrying cannot cure: thrown from ``run()`` at once.
    private static func isFinal(_ error: CoordinationError) -> Bool {
        [.storeClosed, .invalidArgument, .invalidKey, .valueTooLarge].contains(error.code)
    }

    /// Waits until the session ends, the key written as `entry` goes, or the task is cancelled.
    private func waitWhileRegistered(_ entry: Entry?, session: Session) async -> Interruption {
        guard let entry else { return .keyRemoved }
        let store = self.store
        return await withTaskGroup(of: Interruption?.self) { group in
            group.addTask {
                await session.waitUntilEnded() == nil ? .cancelled : .sessionEnded
            }
            group.addTask {
                let removal = await store.waitUntilGone(
                    entry.key, createdAt: entry.createRevision, owner: session.id, while: session)
                return removal == .removed && session.isActive ? .keyRemoved : nil
            }
            defer { group.cancelAll() }
            for await outcome in group {
                if let outcome { return outcome }
                if Task.isCancelled { return .cancelled }
            }
            return .cancelled
        }
    }

    private func write(_ instance: ServiceInstance, session: Session) async throws(CoordinationError) -> Entry? {
        var stamped = instance
        stamped.registrationTimeUTC = Int64(Date().timeIntervalSince1970 * 1000)
        let key = try stamped.key(under: base)
        let value = try stamped.encoded()
        try await store.put(key, value, options: .boundTo(session))
        let entry = try await store.get(key)
        broadcast.set(.registered(entry?.modifyRevision ?? Revision(0)))
        return entry
    }
}

/// Where ``ServiceRegistration`` keeps an instance and ``ServiceDiscovery`` looks for it.
public enum ServiceCatalog: Sendable, Hashable {
    /// Session-bound keys under `base/<name>/<id>`: works on every backend.
    case keyValue
    /// The store's own service catalog when it offers one (`NativeServiceRegistry`), otherwise
    /// the key/value layout.
    case nativeWhenAvailable
}
