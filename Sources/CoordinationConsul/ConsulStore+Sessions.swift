@_spi(Backend) import CoordinationCore
import NIOHTTP1
import Synchronization

extension ConsulStore {
    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try validate(ttl: ttl)
        let body = ConsulWire.encode(
            ConsulWire.SessionCreate(
                Name: configuration.sessionName,
                TTL: ttl.consulText,
                Behavior: "delete",
                LockDelay: configuration.lockDelay.consulText
            ))
        let requestedAt = ContinuousClock.now
        let response = try await send(.PUT, "/v1/session/create", body: body, operation: "makeSession")
        guard response.isSuccess else { throw errors.status(response, "makeSession") }
        guard let created = ConsulWire.decode(ConsulWire.SessionCreated.self, response.body) else {
            throw errors.make(.protocolError, "makeSession: unreadable answer from Consul")
        }
        let session = Session(
            id: SessionID(created.ID), ttl: ttl, backend: self, guaranteedUntil: requestedAt.advanced(by: ttl))
        sessions.add(created.ID, session: session, ttl: ttl, requestedAt: requestedAt)
        return session
    }

    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        guard Self.isSessionID(id.rawValue) else {
            throw errors.make(.invalidArgument, "'\(id)' is not a Consul session id")
        }
        try await destroy(id, operation: "revokeSession")
        forgetExclusive(session: id)
        sessions.expire(id.rawValue)
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        sessions.remove(id.rawValue)
        forgetExclusive(session: id)
        guard Self.isSessionID(id.rawValue) else { return }
        try await destroy(id, operation: "closeSession")
    }

    public func abandonSession(_ id: SessionID) {
        sessions.abandon(id.rawValue)
    }

    /// Destroys session `id`. Also sent by ``close()``, after the store has stopped taking calls:
    /// so straight to the connection pool, not through `send`, which refuses once closed.
    func destroy(_ id: SessionID, operation: String) async throws(CoordinationError) {
        let response = try await http.send(
            .PUT, "/v1/session/destroy/\(id.rawValue)", query: [], body: nil, timeout: configuration.requestTimeout,
            operation: operation, key: nil)
        guard response.isSuccess else { throw errors.status(response, operation) }
    }

    /// One renew request, for the session renewer.
    func renew(_ id: String) async -> SessionRenewer<String>.Outcome {
        do {
            let response = try await send(.PUT, "/v1/session/renew/\(id)", operation: "renewSession")
            if response.status == 404 { return .gone }
            guard response.isSuccess else { return .failed("\(errors.status(response, "renewSession"))") }
            return .renewed(ttl: nil)
        } catch {
            return .failed("\(error)")
        }
    }

    /// A UUID, the only shape Consul gives session ids (checked so that no other text reaches a URL).
    static func isSessionID(_ text: String) -> Bool {
        text.utf8.count == 36
            && text.utf8.allSatisfy { byte in
                byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            }
    }
}

extension ConsulStore: SessionListingStore {
    /// Every session of the datacenter (`/v1/session/list`): its id, TTL, and name on node.
    public func listSessions() async throws(CoordinationError) -> [SessionSummary] {
        let response = try await send(.GET, "/v1/session/list", operation: "listSessions")
        guard response.isSuccess else { throw errors.status(response, "listSessions") }
        guard let sessions = ConsulWire.decode([ConsulWire.SessionInfo].self, response.body) else {
            throw errors.make(.protocolError, "listSessions: unreadable answer from Consul")
        }
        return sessions.map { info in
            SessionSummary(
                id: SessionID(info.ID), ttl: info.TTL.flatMap { ConnectionString.parseDuration($0) },
                name: [info.Name, info.Node.map { "on \($0)" }].compactMap { $0 }.filter { !$0.isEmpty }
                    .joined(separator: " ").nilIfEmpty)
        }
    }
}

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}
