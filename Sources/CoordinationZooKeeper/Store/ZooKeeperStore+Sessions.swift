@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import Synchronization

/// Sessions: one ZooKeeper session (and connection) per ``Session``.
extension ZooKeeperStore {
    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try checkFollowerBound(ttl, "makeSession")
        try validate(ttl: ttl)
        if state.withLock({ $0.closed }) { throw closedError() }
        let client = try await ZooKeeperClient.connect(
            endpoints: endpoints, sessionTimeout: ttl, connectTimeout: configuration.connectTimeout,
            followerBound: configuration.followerBound, security: security,
            group: executor.eventLoop, firstEndpoint: configuration.shuffleEndpoints ? nil : 0)
        guard let facts = await client.session() else {
            await client.close()
            throw make(.connectionFailed, "makeSession: the session ended before it could be used", key: nil)
        }
        do throws(CoordinationError) {
            // The server may have clamped the timeout to its own minimum or maximum.
            try checkFollowerBound(facts.timeout, "makeSession (timeout granted by the server)")
        } catch {
            await client.close()
            throw error
        }
        let id = ZooKeeperPaths.sessionID(facts.id)
        let session = Session(id: id, ttl: facts.timeout, backend: self)
        await client.publishGuarantee { [weak session] until in session?.extendGuarantee(until: until) }
        // The marker another client sets to revoke this session; watched from here.
        let marker = paths.sessionMarker(id)
        let data = Array("ttl-ms=\(ZooKeeperClient.nanoseconds(facts.timeout) / 1_000_000)".utf8)
        do throws(CoordinationError) {
            if try await createWithParents(marker, key: nil, value: data, mode: .ephemeral, client) == nil {
                throw make(.keyExists, "makeSession: the marker of session \(id) exists", key: nil)
            }
            _ = try await client.send(.getData(path: marker, watch: true))
        } catch {
            await client.close()
            throw failure(error, "makeSession", key: nil)
        }
        let registered = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.sessions[id] = SessionRecord(client: client, session: session)
            return true
        }
        guard registered else {
            await client.close()
            throw closedError()
        }
        Task { await self.follow(session, client: client, marker: marker) }
        return session
    }

    /// Mirrors the ZooKeeper session's state on the ``Session``, and ends it when another client
    /// revokes it (sets or removes its marker).
    private func follow(_ session: Session, client: ZooKeeperClient, marker: String) async {
        for await event in client.events {
            switch event {
            case .state(let newState):
                session.transition(to: newState)
            case .notification(let notification) where notification.path == marker:
                switch notification.type {
                case .nodeDataChanged, .nodeDeleted:
                    // Revoked: expired for its owner, and ended on the server so its keys go now.
                    session.transition(to: .expired)
                    await client.close()
                default:
                    break
                }
            case .notification, .resumed:
                break
            }
        }
        if session.isActive { session.transition(to: .expired) }
        _ = state.withLock { $0.sessions.removeValue(forKey: session.id) }
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        let record = state.withLock { $0.sessions.removeValue(forKey: id) }
        // Closed before CloseSession goes out: the marker's removal that follows is no revocation.
        record?.session.transition(to: .closed)
        await record?.client.close()
    }

    public func abandonSession(_ id: SessionID) {
        let record = state.withLock { $0.sessions[id] }
        record?.client.abandon()
    }

    /// Ends session `id` from any client: sets its marker, which its owner answers by closing the
    /// session, then waits until the marker (an ephemeral of that session) is gone — at once for a
    /// live owner, one session timeout later for a crashed one.
    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        guard id.rawValue.count == 16, id.rawValue.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw make(.invalidArgument, "revokeSession: '\(id)' is not a ZooKeeper session id", key: nil)
        }
        let marker = paths.sessionMarker(id)
        let client = try await primary()
        guard let current = try await read(marker, key: nil, client) else { return }
        let text = String(decoding: current.data ?? [], as: UTF8.self)
        let ttlMilliseconds = text.hasPrefix("ttl-ms=") ? Int64(text.dropFirst(7)) ?? 60_000 : 60_000
        do {
            _ = try await client.send(.setData(path: marker, data: Array("revoked".utf8), version: -1))
        } catch  where error.zooKeeperCode == .noNode {
            return
        } catch {
            throw failure(error, "revokeSession", key: nil)
        }
        let deadline = ContinuousClock.now + .milliseconds(ttlMilliseconds * 2) + configuration.sessionTimeout
        while ContinuousClock.now < deadline {
            let gone = try await waitForRemoval(marker, client: client, until: deadline)
            if gone { return }
        }
        throw make(.timeout, "revokeSession: session \(id) still exists after its timeout", key: nil)
    }
}

extension ZooKeeperStore {
    /// The ensemble member the connection of `session` uses (for failure drills and diagnostics).
    public func endpoint(of session: Session) async -> Endpoint? {
        guard let client = state.withLock({ $0.sessions[session.id]?.client }),
            let endpoint = await client.endpoint()
        else { return nil }
        return Endpoint(host: endpoint.host, port: endpoint.port)
    }

    /// A session's guarantee is its timeout less ``Configuration/followerBound``; a timeout that
    /// leaves less than ``Configuration/minimumSessionTTL`` of guarantee is refused.
    func checkFollowerBound(_ ttl: Duration, _ operation: String) throws(CoordinationError) {
        guard configuration.followerBound > .zero, ttl < limits.minimumSessionTTL else { return }
        throw make(
            .invalidArgument,
            "\(operation): a session TTL of \(ttl) guarantees less than \(configuration.minimumSessionTTL) once the "
                + "follower bound of \(configuration.followerBound) is taken off (a member cut off from the quorum may "
                + "answer pings that long); use a TTL of at least \(limits.minimumSessionTTL) "
                + "(store.limits.defaultSessionTTL is \(limits.defaultSessionTTL)), or set follower-bound= to the "
                + "ensemble's (syncLimit + 1) × tickTime (0 for a standalone server)",
            key: nil)
    }
}
