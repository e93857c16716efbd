import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import Logging
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// The Consul backend, over Consul's HTTP API (one process-wide pool of keep-alive connections).
///
/// Keys live in Consul's KV store (`/v1/kv`); conditional writes and every multi-step change are
/// single `/v1/txn` transactions; sessions are Consul sessions (behaviour `delete`, no node health
/// checks, a configurable lock-delay) renewed by the store every TTL/2; watches are blocking
/// queries, never sleep-polling. Contenders are `prefix/<session id>` acquired with their session
/// and ordered by CreateIndex, and locks and elections also take `prefix/.lock` the way Go's
/// `api.Lock` does, so they exclude `consul lock` and Go services (see docs/consul.md).
///
/// The store also offers Consul's own service catalog (`NativeServiceRegistry`): agent service
/// registration with a TTL check, and discovery through `/v1/health/service`.
///
/// ```swift
/// let store = try ConsulStore(configuration: .init(endpoint: Endpoint(host: "127.0.0.1", port: 8500)))
/// try await store.withRunning { store in /* … */ }
/// ```
public final class ConsulStore: KeyValueStore, SessionBackend, NativeServiceRegistry {
    public let storeDescription: StoreDescription
    public let limits: StoreLimits
    public let capabilities: StoreCapabilities = [.valuesOnInnerNodes, .revokeForeignSession]

    let configuration: Configuration
    let http: ConsulHTTP
    let keySpace: ConsulKeySpace
    let errors: ConsulErrorMapper
    let sessions: SessionRenewer<String>
    let watches = BlockingQueryLoops()
    private let closed = Atomic<Bool>(false)
    private let stopped = WakeSignal()
    /// Lines where a contender of ours is a lock or leader: prefix → sessions. Only these take the
    /// `api.Lock` key when they reach the head of the line (a semaphore must not).
    let exclusiveLines = Mutex<[Key: Set<SessionID>]>([:])

    public init(configuration: Configuration) throws(CoordinationError) {
        try Endpoint.validate([configuration.endpoint], backend: "consul", single: true)
        let description = StoreDescription(backend: "consul", endpoint: configuration.endpoint.description)
        let errors = ConsulErrorMapper(store: description)
        self.configuration = configuration
        self.storeDescription = description
        self.errors = errors
        self.limits = StoreLimits(
            maxValueSize: configuration.maxValueSize,
            minimumSessionTTL: configuration.minimumSessionTTL,
            maximumSessionTTL: .seconds(86_400)
        )
        if !configuration.namespace.isEmpty {
            guard (try? Key(configuration.namespace))?.path == configuration.namespace else {
                throw errors.make(
                    .invalidConnectionString, "the namespace '\(configuration.namespace)' is not a valid key")
            }
        }
        self.http = try ConsulHTTP(
            endpoint: configuration.endpoint,
            tls: configuration.tls,
            token: configuration.token,
            datacenter: configuration.datacenter,
            errors: errors,
            logger: configuration.logger
        )
        self.keySpace = ConsulKeySpace(namespace: configuration.namespace)
        self.sessions = SessionRenewer(noun: "session", logger: configuration.logger)
    }

    // MARK: - Service

    /// Renews the store's sessions and serves its watches until the store is closed, the task
    /// cancelled, or (in a `ServiceGroup`) graceful shutdown, which closes the store.
    public func run() async throws {
        try await runClosingOnGracefulShutdown { await runUntilClosed() }
    }

    private func runUntilClosed() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.sessions.run { id in await self.renew(id) }
            }
            group.addTask { await self.watches.run() }
            await withTaskCancellationHandler {
                await stopped.wait()
            } onCancel: {
                stopped.signal()
            }
            group.cancelAll()
        }
    }

    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        watches.close(errors.make(.storeClosed, "the store was closed"))
        // Destroy our sessions so their keys go now rather than a TTL (or two) later.
        await withDiscardingTaskGroup { group in
            for (_, session) in sessions.allSessions() {
                group.addTask {
                    self.sessions.remove(session.id.rawValue)
                    _ = try? await self.destroy(session.id, operation: "close")
                    session.transition(to: .closed)
                }
            }
        }
        stopped.signal()
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    // MARK: - Plumbing

    func send(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String?)] = [],
        body: [UInt8]? = nil,
        timeout: Duration? = nil,
        operation: String,
        key: Key? = nil
    ) async throws(CoordinationError) -> ConsulResponse {
        if isClosed { throw errors.make(.storeClosed, "\(operation): the store was closed", key: key) }
        return try await Telemetry.storeCall(backend: "consul", operation: operation) {
            () async throws(CoordinationError) in
            try await http.send(
                method, path, query: query, body: body, timeout: timeout ?? configuration.requestTimeout,
                operation: operation, key: key)
        }
    }

    func kvPath(_ key: Key) -> String { "/v1/kv/" + keySpace.consulKey(key) }
    func treePath(_ prefix: Key) -> String { "/v1/kv/" + keySpace.consulKey(prefix) + "/" }

    /// The outcome of a `/v1/txn`: committed with its results, or rolled back with why.
    enum TxnOutcome {
        case committed([ConsulWire.KVPair])
        case rolledBack([ConsulWire.TxnResponse.Failure])

        func failedAt(_ index: Int) -> Bool {
            if case .rolledBack(let failures) = self { return failures.contains { $0.OpIndex == index } }
            return false
        }

        var failureText: String {
            if case .rolledBack(let failures) = self { return failures.map(\.What).joined(separator: "; ") }
            return ""
        }
    }

    func txn(
        _ operations: [ConsulWire.TxnOperation],
        operation: String,
        key: Key?
    ) async throws(CoordinationError) -> TxnOutcome {
        let response = try await send(
            .PUT, "/v1/txn", body: ConsulWire.encode(operations), operation: operation, key: key)
        switch response.status {
        case 200:
            guard let decoded = ConsulWire.decode(ConsulWire.TxnResponse.self, response.body) else {
                throw errors.make(.protocolError, "\(operation): unreadable transaction result", key: key)
            }
            return .committed(decoded.pairs)
        case 409:
            guard let decoded = ConsulWire.decode(ConsulWire.TxnResponse.self, response.body) else {
                throw errors.make(.protocolError, "\(operation): unreadable transaction failure", key: key)
            }
            let failures = decoded.Errors ?? []
            // ACL refusals inside a transaction come back as failed operations, not as 403.
            if failures.contains(where: { $0.What.contains("ACL not found") }) {
                throw errors.make(.authenticationFailed, "\(operation): Consul does not know the ACL token", key: key)
            }
            if failures.contains(where: { $0.What.lowercased().contains("permission denied") }) {
                throw errors.make(.permissionDenied, "\(operation): permission denied by Consul's ACLs", key: key)
            }
            return .rolledBack(failures)
        default:
            throw errors.status(response, operation, key: key)
        }
    }

    /// The entry a write in a transaction produced (the last result for that key).
    func written(_ pairs: [ConsulWire.KVPair], key: Key, value: [UInt8]) throws(CoordinationError) -> Entry {
        let consulKey = keySpace.consulKey(key)
        guard let pair = pairs.last(where: { $0.Key == consulKey }) else {
            throw errors.make(.protocolError, "the transaction result does not name the key written", key: key)
        }
        return Entry(
            key: key,
            value: value,
            createRevision: Revision(pair.CreateIndex),
            modifyRevision: Revision(pair.ModifyIndex),
            session: pair.Session.flatMap { $0.isEmpty ? nil : SessionID($0) }
        )
    }

    func activeSessionID(_ session: Session?, key: Key) throws(CoordinationError) -> String? {
        guard let session else { return nil }
        guard session.isActive else {
            throw errors.make(.sessionExpired, "session \(session.id) has ended; cannot bind a key to it", key: key)
        }
        return session.id.rawValue
    }

    func sessionFailure(_ outcome: TxnOutcome, session: Session?, key: Key) -> CoordinationError {
        let text = outcome.failureText
        if text.lowercased().contains("session") && (text.contains("invalid") || text.contains("not found")) {
            if let session { sessions.expire(session.id.rawValue) }
            return errors.make(.sessionExpired, "session \(session?.id.rawValue ?? "?") is gone: \(text)", key: key)
        }
        return errors.make(.keyExists, "the key is held by another session: \(text)", key: key)
    }
}
