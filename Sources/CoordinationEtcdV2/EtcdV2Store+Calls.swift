import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

// How every request is made and answered, and the bookkeeping of keys bound to sessions.
extension EtcdV2Store {
    /// etcd v2 hides every node whose name starts with `_` from listings and recursive watches,
    /// so such a key could be written but never listed or watched: refuse it before any I/O.
    static func checkVisible(_ key: Key) throws(CoordinationError) {
        if key.segments.contains(where: { $0.hasPrefix("_") }) {
            throw CoordinationError(
                .invalidKey,
                "invalid key for etcd v2: a segment starting with '_' is a hidden node, left out of listings and watches",
                key: key.path, backend: "etcdv2")
        }
    }

    func checkOpen(_ key: Key?) throws(CoordinationError) {
        if closed.load(ordering: .acquiring) {
            throw errors.make(.storeClosed, "the store was closed", key: key)
        }
    }

    func send(
        _ method: V2Connection.Method,
        _ path: String,
        query: [(String, String)] = [],
        value: String? = nil,
        timeout: Duration? = nil,
        operation: String,
        key: Key? = nil
    ) async throws(CoordinationError) -> V2Reply {
        try checkOpen(key)
        if let key { try Self.checkVisible(key) }
        return try await Telemetry.storeCall(backend: "etcdv2", operation: operation) {
            () async throws(CoordinationError) in
            try await connection.send(
                method, path, query: query, value: value, timeout: timeout ?? configuration.requestTimeout,
                operation: operation, key: key)
        }
    }

    func success(_ reply: V2Reply, _ operation: String, key: Key?) throws(CoordinationError) -> V2Response {
        switch reply {
        case .success(let response, _): return response
        case .failure(let body): throw errors.etcd(body, operation, key: key)
        }
    }

    /// The TTL in seconds for a key bound to `session`, or `nil` when unbound.
    func sessionTTL(_ session: Session?, key: Key) throws(CoordinationError) -> Int64? {
        guard let session else { return nil }
        guard session.isActive, let ttl = sessions.ttlSeconds(session.id) else {
            throw errors.make(.sessionExpired, "session \(session.id) has ended; cannot bind a key to it", key: key)
        }
        return ttl
    }

    /// After a write: a bound key joins its session's refreshes and record; an unbound write ends
    /// any binding the key had.
    func track(_ key: Key, node: V2Node, session: Session?) async throws(CoordinationError) {
        guard let session else {
            if let previous = sessions.unbind(key) { await dropRecord(previous, key) }
            return
        }
        sessions.bind(key, to: session.id, index: node.modifiedIndex)
    }

    /// Lists `key` in the session's record, so that any client can find and revoke it. Written
    /// before the key itself where the name is known, so a cancelled write never leaves a bound
    /// key that the record does not list; an entry for a key that was not written is harmless
    /// (revocation checks the key's own session first).
    func recordBinding(_ id: SessionID, _ key: Key) async throws(CoordinationError) {
        let reply = try await send(
            .put, keySpace.boundKeyRecordPath(id, key), value: key.path, operation: "bind", key: key)
        if case .failure(let body) = reply {
            configuration.logger.info(
                "could not record a bound key in its session", metadata: ["key": "\(key)", "error": "\(body.message)"])
        }
    }

    func untrack(_ key: Key) async {
        if let previous = sessions.unbind(key) { await dropRecord(previous, key) }
    }

    func dropRecord(_ id: SessionID, _ key: Key) async {
        _ = try? await send(.delete, keySpace.boundKeyRecordPath(id, key), operation: "unbind", key: key)
    }
}
