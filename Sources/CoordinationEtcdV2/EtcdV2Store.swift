import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The etcd v2 backend, over the v2 HTTP keys API (for clusters that still speak it, such as
/// etcd 3.4 started with `--enable-v2=true`; the v2 and v3 keyspaces are separate).
///
/// It keeps etcd v2's own rules, as libkv users know them: directories are not keys and hold no
/// value (a put on one fails with `isADirectory`), a put below `a/b` makes `a/b` a directory (and
/// fails with `notADirectory` if `a/b` holds a value), `watchTree` needs a directory, and
/// `PutOptions.isDirectory` creates an empty one. TTLs are whole seconds.
///
/// v2 has no leases: a session is a TTL'd directory record plus the session's keys, each with the
/// same TTL, refreshed by the store. Conditional writes use `prevExist` / `prevIndex`; watches are
/// `wait=true` long polls; contenders are in-order keys (POST) ordered by `createdIndex`.
public final class EtcdV2Store: KeyValueStore, SessionBackend {
    public let storeDescription: StoreDescription
    public let limits: StoreLimits
    /// No values on inner nodes (v2 directories hold none); delete events tell `expire` apart;
    /// a session can be revoked by any client through its record.
    public let capabilities: StoreCapabilities = [.distinguishesExpiry, .revokeForeignSession]

    let configuration: Configuration
    let keySpace: V2KeySpace
    let errors: V2ErrorMapper
    let connection: V2Connection
    let runner = V2TaskRunner()
    let http: HTTPClient
    let sessions: V2SessionKeeper
    let watches = Mutex<[UInt64: (continuation: WatchStream.Continuation, stop: WakeSignal)]>([:])
    let nextWatchID = Atomic<UInt64>(0)
    /// Set once close() starts (it runs once); `closed` once calls are refused.
    let closing = Atomic<Bool>(false)
    let closed = Atomic<Bool>(false)
    let stopped = WakeSignal()

    public init(configuration: Configuration) throws(CoordinationError) {
        try Endpoint.validate([configuration.endpoint], backend: "etcdv2", single: true)
        self.configuration = configuration
        self.storeDescription = StoreDescription(backend: "etcdv2", endpoint: configuration.endpoint.description)
        self.limits = StoreLimits(
            maxValueSize: configuration.maxValueSize,
            minimumSessionTTL: .seconds(1),
            maximumSessionTTL: .seconds(Int64(Int32.max))
        )
        self.errors = V2ErrorMapper(store: storeDescription)
        if !configuration.namespace.isEmpty, (try? Key(configuration.namespace)) == nil {
            throw errors.make(.invalidConnectionString, "the namespace must be a valid key path")
        }
        var httpConfiguration = HTTPClient.Configuration()
        // Every watch holds a connection for its long poll, so allow many (HTTP/1.1, one request
        // per connection at a time).
        httpConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        httpConfiguration.timeout = .init(connect: .milliseconds(Self.milliseconds(configuration.requestTimeout)))
        httpConfiguration.redirectConfiguration = .disallow
        // A connection that cannot be made (refused, TLS refused) fails its calls at once as
        // `connectionFailed` instead of being tried again until each call's deadline; watches and
        // session renewals retry on their own schedule.
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        var baseURL = "http://\(configuration.endpoint)"
        if let tls = configuration.tls {
            httpConfiguration.tlsConfiguration = try tls.clientConfiguration(
                store: storeDescription, logger: configuration.logger)
            if let serverName = tls.serverName {
                // Verified against (and sent as SNI) the name in the URL; connected to the endpoint.
                httpConfiguration.dnsOverride = [serverName: configuration.endpoint.host]
                baseURL = "https://\(Endpoint(host: serverName, port: configuration.endpoint.port))"
            } else {
                baseURL = "https://\(configuration.endpoint)"
            }
        }
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        self.keySpace = V2KeySpace(namespace: configuration.namespace)
        self.connection = V2Connection(
            http: http, baseURL: baseURL,
            authorization: configuration.credentials.map {
                "Basic " + Data("\($0.username):\($0.password)".utf8).base64EncodedString()
            },
            errors: errors, maxResponseSize: 64 * 1024 * 1024)
        self.sessions = V2SessionKeeper(connection: connection, keySpace: keySpace, logger: configuration.logger)
    }

    deinit {
        // The HTTP client must be shut down; close() does it, this covers a store never closed.
        // Without blocking: a deinit can run on a thread of Swift's small cooperative pool, and a
        // blocking shutdown there can starve the very work it waits for.
        if !closing.load(ordering: .acquiring) { _ = http.shutdown() }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        max(1, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Service

    /// Refreshes the store's sessions and serves its watches until the store is closed, the task
    /// cancelled, or (in a `ServiceGroup`) graceful shutdown, which closes the store.
    public func run() async throws {
        try await runClosingOnGracefulShutdown { await runUntilClosed() }
    }

    private func runUntilClosed() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runner.run() }
            group.addTask { await self.sessions.run() }
            await stopped.wait()
            group.cancelAll()
        }
    }

    public func close() async {
        guard !closing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let open = watches.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
        for watch in open {
            watch.continuation.fail(errors.make(.storeClosed, "the store was closed"))
            watch.stop.signal()
        }
        // End our sessions now rather than a TTL later, as etcd v3 revokes leases.
        await withDiscardingTaskGroup { group in
            for tracked in sessions.allSessions() where !tracked.abandoned {
                group.addTask {
                    _ = self.sessions.remove(tracked.session.id)
                    try? await self.endSession(tracked.session.id, alsoKnown: Array(tracked.keys.keys))
                    tracked.session.transition(to: .closed)
                }
            }
        }
        closed.store(true, ordering: .releasing)
        runner.finish()
        stopped.signal()
        try? await http.shutdown()
    }
}
