import CoordinationCore
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
/// (``NativeServiceRegistry``, e.g. Consul's agent services), the instance is registered there
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
        sessionTTL: Duration = .seconds(10),
        retryDelay: Duration = .milliseconds(500),
        catalog: ServiceCatalog = .keyValue,
        logger: Logger = Logger(label: "swift-coordination.registration")
    ) {
        self.catalog = catalog
        self.instance = Mutex(instance)
        self.base = base
        self.store = store
        self.sessionTTL = sessionTTL
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
                if error.code == .invalidKey || error.code == .invalidArgument || error.code == .storeClosed {
                    throw error
                }
                if Task.isCancelled { break }
                if registered {
                    registered = false
                    broadcast.set(.reregistering)
                }
                logger.info("native registration failed, retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: retryDelay)
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

    private func keepRegistered() async throws {
        while !Task.isCancelled {
            var opened: Session?
            do {
                let session = try await store.makeSession(ttl: sessionTTL)
                opened = session
                self.session.withLock { $0 = session }
                let current = instance.withLock { $0 }
                try await write(current, session: session)
            } catch {
                // Whatever went wrong (including cancellation mid-write), a session we opened must
                // not linger and keep a half-made registration alive.
                if let opened, !opened.isAbandoned {
                    await shielded { try? await opened.close() }
                }
                if error.code == .storeClosed || error.code == .invalidKey || error.code == .valueTooLarge {
                    throw error
                }
                if Task.isCancelled { return }
                logger.info("registration failed, retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: retryDelay)
                continue
            }
            guard let session = opened else { continue }
            let ended = await session.waitUntilEnded()
            if ended == nil {
                // Cancelled: deregister by ending the session, which removes the key (unless the
                // session was abandoned in a drill: a crashed process deregisters nothing).
                if !session.isAbandoned {
                    await shielded { try? await session.close() }
                }
                return
            }
            broadcast.set(.reregistering)
            logger.info("registration session ended, registering again", metadata: ["session": "\(session.id)"])
        }
    }

    private func write(_ instance: ServiceInstance, session: Session) async throws(CoordinationError) {
        var stamped = instance
        stamped.registrationTimeUTC = Int64(Date().timeIntervalSince1970 * 1000)
        let key = try stamped.key(under: base)
        let value = try stamped.encoded()
        try await store.put(key, value, options: .boundTo(session))
        let entry = try await store.get(key)
        broadcast.set(.registered(entry?.modifyRevision ?? Revision(0)))
    }
}

/// Where ``ServiceRegistration`` keeps an instance and ``ServiceDiscovery`` looks for it.
public enum ServiceCatalog: Sendable, Hashable {
    /// Session-bound keys under `base/<name>/<id>`: works on every backend.
    case keyValue
    /// The store's own service catalog when it offers one (``NativeServiceRegistry``), otherwise
    /// the key/value layout.
    case nativeWhenAvailable
}
