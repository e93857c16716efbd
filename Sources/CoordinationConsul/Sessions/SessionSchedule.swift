/// The pure timing of a store's Consul sessions: when to renew each one, when its owner must be told
/// it is suspended, and when it must be reported expired. No I/O and no clock of its own, so the
/// safety rule is unit-tested without a server.
///
/// Safety rule: Consul renews a session when it *receives* `PUT /v1/session/renew/<id>`, so a renew
/// *sent* at `s` and answered 200 keeps the session alive on the server until at least `s + TTL`
/// (Consul actually waits up to 2×TTL). The schedule counts from send times only, so the session
/// is reported expired no later than the server could invalidate it.
///
/// Renewals go out every TTL/2, as Consul's own `api.Session.RenewPeriodic` does; one renew per
/// session is in flight at a time (HTTP is request/response). A session is reported suspended
/// once less than a quarter TTL of guarantee is left (a renewal failed or is overdue).
struct SessionSchedule<Instant: InstantProtocol> where Instant.Duration == Duration {
    struct Tracked {
        let ttl: Duration
        /// The server holds the session at least until then.
        var guaranteedUntil: Instant
        var nextRenewal: Instant
        /// When the renew now in flight was sent.
        var inFlight: Instant?
        /// The owner stopped renewing (a crash drill).
        var abandoned = false
        var suspended = false
    }

    struct Actions: Equatable {
        var renew: [String] = []
        var suspend: [String] = []
        var expire: [String] = []
    }

    private(set) var sessions: [String: Tracked] = [:]

    static func renewalInterval(_ ttl: Duration) -> Duration { ttl / 2 }
    static func suspendMargin(_ ttl: Duration) -> Duration { ttl / 4 }

    /// A session created by a request sent at `requestedAt`.
    mutating func add(_ id: String, ttl: Duration, requestedAt: Instant) {
        sessions[id] = Tracked(
            ttl: ttl,
            guaranteedUntil: requestedAt.advanced(by: ttl),
            nextRenewal: requestedAt.advanced(by: Self.renewalInterval(ttl))
        )
    }

    @discardableResult
    mutating func remove(_ id: String) -> Tracked? { sessions.removeValue(forKey: id) }

    mutating func abandon(_ id: String) { sessions[id]?.abandoned = true }

    /// A renew sent at `sentAt` was answered 200. Returns whether this ends a suspension (only if it
    /// brings the guarantee back above the suspend margin: no alive/suspended flapping).
    mutating func renewed(_ id: String, sentAt: Instant, now: Instant) -> Bool {
        guard var session = sessions[id] else { return false }
        session.inFlight = nil
        let until = sentAt.advanced(by: session.ttl)
        if until > session.guaranteedUntil { session.guaranteedUntil = until }
        session.nextRenewal = sentAt.advanced(by: Self.renewalInterval(session.ttl))
        var recovered = false
        if session.suspended, session.guaranteedUntil > now.advanced(by: Self.suspendMargin(session.ttl)) {
            session.suspended = false
            recovered = true
        }
        sessions[id] = session
        return recovered
    }

    /// A renew could not be delivered or answered: try again after `retryDelay` (the guarantee
    /// keeps running down meanwhile).
    mutating func renewFailed(_ id: String, now: Instant, retryDelay: Duration) {
        guard sessions[id] != nil else { return }
        sessions[id]?.inFlight = nil
        sessions[id]?.nextRenewal = now.advanced(by: retryDelay)
    }

    /// What is due at `now`. Expired sessions are removed; a renewal is started only when none is
    /// in flight for that session.
    mutating func tick(now: Instant) -> Actions {
        var actions = Actions()
        for (id, var session) in sessions {
            if now >= session.guaranteedUntil {
                sessions.removeValue(forKey: id)
                actions.expire.append(id)
                continue
            }
            if !session.suspended,
                now >= session.guaranteedUntil.advanced(by: .zero - Self.suspendMargin(session.ttl))
            {
                session.suspended = true
                actions.suspend.append(id)
            }
            if !session.abandoned, session.inFlight == nil, now >= session.nextRenewal {
                session.inFlight = now
                actions.renew.append(id)
            }
            sessions[id] = session
        }
        actions.renew.sort()
        actions.suspend.sort()
        actions.expire.sort()
        return actions
    }

    /// The next instant anything can become due.
    func nextDeadline() -> Instant? {
        var next: Instant?
        for session in sessions.values {
            var candidates = [session.guaranteedUntil]
            if !session.abandoned, session.inFlight == nil { candidates.append(session.nextRenewal) }
            if !session.suspended {
                candidates.append(session.guaranteedUntil.advanced(by: .zero - Self.suspendMargin(session.ttl)))
            }
            for candidate in candidates where next.map({ candidate < $0 }) ?? true { next = candidate }
        }
        return next
    }
}
