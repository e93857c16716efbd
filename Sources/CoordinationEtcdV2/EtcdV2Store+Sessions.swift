import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

// Sessions: a TTL'd record directory plus a TTL on each bound key, refreshed by V2SessionKeeper.
extension EtcdV2Store {
    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try validate(ttl: ttl)
        try checkOpen(nil)
        // v2 TTLs are whole seconds: round up.
        let seconds = max(1, (Self.milliseconds(ttl) + 999) / 1000)
        let id = SessionID(UUID().uuidString.lowercased())
        let sentAt = ContinuousClock.now
        let reply = try await send(
            .put, keySpace.sessionPath(id), query: [("dir", "true"), ("ttl", String(seconds)), ("prevExist", "false")],
            operation: "makeSession")
        _ = try success(reply, "makeSession", key: nil)
        let session = Session(
            id: id, ttl: .seconds(seconds), backend: self, guaranteedUntil: sentAt + .seconds(seconds))
        sessions.add(session, ttlSeconds: seconds, sentAt: sentAt)
        return session
    }

    /// Ends a session from any client: removes every key its record lists that is still bound to
    /// it, then the record. Its owner sees `expired` on its next refresh.
    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        guard (try? Key(id.rawValue))?.segments.count == 1 else {
            throw errors.make(.invalidArgument, "'\(id)' is not an etcd v2 session id")
        }
        let tracked = sessions.remove(id)
        try await endSession(id, alsoKnown: tracked.map { Array($0.keys.keys) } ?? [])
        tracked?.session.transition(to: .expired)
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        guard let tracked = sessions.remove(id) else { return }
        try await endSession(id, alsoKnown: Array(tracked.keys.keys))
    }

    public func abandonSession(_ id: SessionID) {
        sessions.abandon(id)
    }

    /// Deletes the keys a session's record lists, and those this store knows it bound (each only
    /// while still bound to the session), then the record.
    func endSession(_ id: SessionID, alsoKnown: [Key] = []) async throws(CoordinationError) {
        let reply = try await send(
            .get, keySpace.sessionPath(id), query: [("recursive", "true")], operation: "revokeSession")
        var bound = Set(alsoKnown)
        switch reply {
        case .success(let response, _):
            for leaf in response.node.leaves where !leaf.isDirectory {
                if let key = try? Key(leaf.value ?? "") { bound.insert(key) }
            }
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            if bound.isEmpty { return }  // already gone
        case .failure(let body):
            throw errors.etcd(body, "revokeSession")
        }
        let failure = await withTaskGroup(of: CoordinationError?.self, returning: CoordinationError?.self) { group in
            for key in bound {
                group.addTask {
                    do throws(CoordinationError) {
                        guard let entry = try await self.get(key), entry.session == id else { return nil }
                        _ = try await self.send(
                            .delete, self.keySpace.path(key),
                            query: [("prevIndex", String(entry.modifyRevision.value))],
                            operation: "revokeSession", key: key)
                        self.sessions.unbind(key)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            for await result in group { if let result { return result } }
            return nil
        }
        if let failure { throw failure }
        _ = try await send(
            .delete, keySpace.sessionPath(id), query: [("recursive", "true")], operation: "revokeSession")
    }
}
