@_spi(Backend) import CoordinationCore
import CoordinationNIO
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The etcd v3 backend, over gRPC (HTTP/2).
///
/// One connection per store, multiplexed: every lease of the store is renewed on one
/// `LeaseKeepAlive` stream, every watch shares one `Watch` stream, conditional writes are single
/// `Txn`s, and every unary call has a deadline. Contenders are `prefix/<lease id in hex>` ordered by
/// create revision — the layout of etcd's own concurrency `Mutex` and `Election`, so locks and
/// elections are shared with `etcdctl lock` / `etcdctl elect` and Go services.
///
/// ```swift
/// let store = try EtcdStore(configuration: .init(endpoints: [Endpoint(host: "127.0.0.1", port: 2379)]))
/// try await store.withRunning { store in /* … */ }
/// ```
public final class EtcdStore: KeyValueStore, SessionBackend {
    public let storeDescription: StoreDescription
    public let limits: StoreLimits
    public let capabilities: StoreCapabilities = [.valuesOnInnerNodes, .revokeForeignSession]
    /// The event loop of the store's connections (see `KeyValueStore.taskExecutor`).
    public var taskExecutor: (any TaskExecutor)? { executor }

    let configuration: Configuration
    let transport: EtcdTransport
    let keySpace: EtcdKeySpace
    let errors: EtcdErrorMapper
    let leases: LeaseKeeper
    let watches: WatchHub
    let followers: KeyFollowers
    let closed = Atomic<Bool>(false)
    let stopped = WakeSignal()
    let authToken = Mutex<String?>(nil)
    let executor: EventLoopTaskExecutor

    public init(configuration: Configuration) throws(CoordinationError) {
        try Endpoint.validate(configuration.endpoints, backend: "etcd")
        self.configuration = configuration
        self.storeDescription = StoreDescription(
            backend: "etcd", endpoint: configuration.endpoints.map(\.description).joined(separator: ","))
        self.limits = StoreLimits(
            maxValueSize: configuration.maxValueSize,
            minimumSessionTTL: .seconds(1),
            maximumSessionTTL: .seconds(9_000_000_000)
        )
        self.errors = EtcdErrorMapper(store: storeDescription)
        self.executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())
        var tls: EtcdTransport.TLS?
        if let settings = configuration.tls {
            tls = try EtcdTransport.TLS(settings, errors: errors, logger: configuration.logger)
        }
        self.transport = EtcdTransport(
            endpoints: configuration.endpoints,
            tls: tls,
            eventLoop: executor.eventLoop,
            connectTimeout: min(configuration.requestTimeout, .seconds(5)),
            // A response carries at most a range of values; etcd's own default limit is 2 GiB.
            maximumMessageSize: Int(Int32.max),
            logger: configuration.logger
        )
        self.keySpace = EtcdKeySpace(namespace: configuration.namespace)
        let transport = self.transport
        self.leases = LeaseKeeper(logger: configuration.logger) { ttl in
            // A keep-alive is late: a member that no longer answers (stopped, cut off) must be
            // left well before the lease runs out, so the PING's answer is awaited a fifth of it.
            transport.checkLiveness(timeout: min(.seconds(2), max(.milliseconds(200), ttl / 5)))
        }
        self.watches = WatchHub(keySpace: keySpace, errors: errors, logger: configuration.logger)
        self.followers = KeyFollowers(executor: executor)
    }

    // MARK: - Service

    /// Serves the store's keep-alive and watch streams until the store is closed, the task
    /// cancelled, or (in a `ServiceGroup`) graceful shutdown, which closes the store.
    public func run() async throws {
        try await runClosingOnGracefulShutdown { await serveStreams() }
    }

    private func serveStreams() async {
        let snapshotter: WatchHub.Snapshotter = { [keySpace] key, rangeEnd in
            let response: Etcdserverpb_RangeResponse = try await self.transport.unary(
                EtcdRPC.range.path,
                Etcdserverpb_RangeRequest.with {
                    $0.key = Data(key)
                    $0.rangeEnd = Data(rangeEnd)
                },
                metadata: self.metadata(),
                timeout: self.configuration.requestTimeout,
                readOnly: true
            )
            let entries = response.kvs.compactMap { kv in keySpace.key(kv.key).map { EtcdEntries.entry(kv, key: $0) } }
            return (entries, response.header.revision)
        }
        // Returns when the store is closed or the task is cancelled, without throwing: a
        // ServiceGroup sees a clean stop. The keep-alive stream and the watch stream
        // are served on the store's event loop; the connection itself is made on demand.
        await onTaskExecutor {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.leases.run(transport: self.transport, metadata: self.streamMetadata) }
                group.addTask {
                    await self.watches.run(
                        transport: self.transport, snapshot: snapshotter, metadata: self.streamMetadata)
                }
                await stopped.wait()
                group.cancelAll()
            }
        }
    }

    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        followers.close()
        watches.close()
        // Revoke our leases so their keys go now rather than a TTL later.
        await withDiscardingTaskGroup { group in
            for (id, session) in leases.allSessions() {
                group.addTask {
                    let _: Etcdserverpb_LeaseRevokeResponse? = try? await self.transport.unary(
                        EtcdRPC.leaseRevoke.path, Etcdserverpb_LeaseRevokeRequest.with { $0.id = id },
                        metadata: self.metadata(), timeout: self.configuration.requestTimeout)
                    self.leases.remove(id)
                    session.transition(to: .closed)
                }
            }
        }
        await transport.shutdown()
        stopped.signal()
    }
}
