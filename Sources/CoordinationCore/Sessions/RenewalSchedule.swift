/// The renewal rule every backend's sessions follow, as pure timing: when to send each keep-alive,
/// when the owner must be told its session is suspended, and when it must be reported expired. No
/// I/O and no clock of its own, so the rule is unit-tested without a server. ``SessionRenewer``
/// runs it for etcd (leases), Consul (sessions) and etcd v2 (session directories); ZooKeeper's
/// connection state machine applies the same ``RenewalRule`` to its pings.
///
/// The safety rule: a session is reported expired no later than the instant the server could end
/// it. A server renews when it *receives* a keep-alive, so a keep-alive *sent* at `s` and
/// acknowledged with TTL `t` holds the session on the server until at least `s + t`. The schedule
/// counts from send times, never from acknowledgement times, and the guarantee only ever grows.
///
/// Keep-alives are matched to acknowledgements in send order. A backend that renews over one
/// stream (etcd's `LeaseKeepAlive`) may have several outstanding; one that renews by request
/// (Consul, etcd v2) has at most one in flight per session (`oneInFlight`).
struct RenewalSchedule<ID: Hashable & Comparable & Sendable, Instant: InstantProtocol>: Sendable
where Instant.Duration == Duration {
    struct Tracked: Sendable {
        let ttl: Duration
        /// The server holds the session at least until then.
        var guaranteedUntil: Instant
        /// When the next keep-alive is due.
        var nextRenewal: Instant
        /// Send times of keep-alives not yet answered, oldest first.
        var outstanding: [Instant] = []
        /// The owner stopped renewing (a crash drill): never renewed again.
        var abandoned = false
        var suspended = false
    }

    /// What the caller must do after a tick.
    struct Actions: Equatable, Sendable {
        var renew: [ID] = []
        var suspend: [ID] = []
        var expire: [ID] = []
    }

    /// What an acknowledgement did.
    struct Acknowledgement: Equatable, Sendable {
        /// `false`: the server says the session is gone; report it expired.
        var alive: Bool
        /// It was suspended and this brought the guarantee back above the suspend margin.
        var recovered: Bool
    }

    private(set) var tracked: [ID: Tracked] = [:]
    /// At most one keep-alive per session outstanding (request/response backends).
    let oneInFlight: Bool

    init(oneInFlight: Bool = false) {
        self.oneInFlight = oneInFlight
    }

    /// Adds a session granted by a request sent at `requestedAt` with the granted TTL.
    mutating func add(_ id: ID, ttl: Duration, requestedAt: Instant) {
        tracked[id] = Tracked(
            ttl: ttl,
            guaranteedUntil: requestedAt.advanced(by: ttl),
            nextRenewal: requestedAt.advanced(by: RenewalRule.interval(ttl))
        )
    }

    @discardableResult
    mutating func remove(_ id: ID) -> Tracked? { tracked.removeValue(forKey: id) }

    mutating func abandon(_ id: ID) { tracked[id]?.abandoned = true }

    /// Records that a keep-alive for `id` went out at `now`.
    mutating func sent(_ id: ID, at now: Instant) {
        tracked[id]?.outstanding.append(now)
    }

    /// Applies the server's answer to the oldest outstanding keep-alive of `id`: the session is held
    /// for `ttl` (`nil`: the TTL it was granted) counted from that keep-alive's send time; a `ttl`
    /// of zero or less means the server says it is gone. An acknowledgement with no outstanding
    /// keep-alive (its stream was replaced meanwhile) gives no new guarantee. One that leaves too
    /// little guaranteed does not end a suspension (no alive/suspended flapping).
    mutating func acknowledge(_ id: ID, ttl: Duration? = nil, now: Instant? = nil) -> Acknowledgement {
        guard var session = tracked[id] else { return Acknowledgement(alive: true, recovered: false) }
        if let ttl, ttl <= .zero { return Acknowledgement(alive: false, recovered: false) }
        guard !session.outstanding.isEmpty else { return Acknowledgement(alive: true, recovered: false) }
        let sentAt = session.outstanding.removeFirst()
        let until = sentAt.advanced(by: ttl ?? session.ttl)
        if until > session.guaranteedUntil { session.guaranteedUntil = until }
        var recovered = false
        if session.suspended,
            now.map({ session.guaranteedUntil > $0.advanced(by: RenewalRule.suspendMargin(session.ttl)) }) ?? true
        {
            session.suspended = false
            recovered = true
        }
        tracked[id] = session
        return Acknowledgement(alive: true, recovered: recovered)
    }

    /// The oldest outstanding keep-alive of `id` failed (not delivered, or no usable answer): no
    /// new guarantee, the session is suspended at once (contact with the server is in doubt, as
    /// Curator's SUSPENDED), and the next keep-alive goes out after `retryDelay`. Returns whether
    /// this suspended it.
    @discardableResult
    mutating func failed(_ id: ID, now: Instant, retryDelay: Duration) -> Bool {
        guard var session = tracked[id] else { return false }
        if !session.outstanding.isEmpty { session.outstanding.removeFirst() }
        if !session.abandoned { session.nextRenewal = now.advanced(by: retryDelay) }
        let newly = !session.suspended
        session.suspended = true
        tracked[id] = session
        return newly
    }

    /// The stream that carried the keep-alives broke: those outstanding can no longer be answered.
    /// Sessions that were waiting for an answer are suspended; every session is renewed at once on
    /// the next stream. Returns the sessions this suspended.
    @discardableResult
    mutating func streamReset(now: Instant) -> [ID] {
        var suspended: [ID] = []
        for id in tracked.keys {
            guard var session = tracked[id] else { continue }
            if !session.outstanding.isEmpty, !session.suspended {
                session.suspended = true
                suspended.append(id)
            }
            session.outstanding.removeAll()
            if !session.abandoned { session.nextRenewal = now }
            tracked[id] = session
        }
        return suspended.sorted()
    }

    /// Decides what is due at `now`. Expired sessions are removed. A renewal is due only when
    /// `canSend` (a stream is open; otherwise it is retried after `retryDelay`) and, with
    /// `oneInFlight`, when none is outstanding; the caller records each with ``sent(_:at:)``.
    ///
    /// With `coalescing`, a renewal due within ``RenewalRule/coalescingWindow(_:)`` of `now` goes
    /// out now too (early, which costs nothing: its guarantee counts from its send). Thousands of
    /// sessions whose renewals fall a few milliseconds apart then take one tick, not one each.
    mutating func tick(now: Instant, canSend: Bool = true, retryDelay: Duration = .zero, coalescing: Bool = false)
        -> Actions
    {
        var actions = Actions()
        for (id, var session) in tracked {
            if now >= session.guaranteedUntil {
                tracked.removeValue(forKey: id)
                actions.expire.append(id)
                continue
            }
            if !session.suspended, now >= Self.suspendAt(session) {
                session.suspended = true
                actions.suspend.append(id)
            }
            let renewBy = coalescing ? now.advanced(by: RenewalRule.coalescingWindow(session.ttl)) : now
            if Self.mayRenew(session, oneInFlight: oneInFlight), renewBy >= session.nextRenewal {
                if canSend {
                    actions.renew.append(id)
                    session.nextRenewal = now.advanced(by: RenewalRule.interval(session.ttl))
                } else {
                    session.nextRenewal = now.advanced(by: retryDelay)
                }
            }
            tracked[id] = session
        }
        actions.renew.sort()
        actions.suspend.sort()
        actions.expire.sort()
        return actions
    }

    /// The next instant anything can become due, if any session is tracked.
    func nextDeadline() -> Instant? {
        var next: Instant?
        func consider(_ candidate: Instant) {
            if let current = next, current <= candidate { return }
            next = candidate
        }
        for session in tracked.values {
            consider(session.guaranteedUntil)
            if Self.mayRenew(session, oneInFlight: oneInFlight) { consider(session.nextRenewal) }
            if !session.suspended { consider(Self.suspendAt(session)) }
        }
        return next
    }

    private static func mayRenew(_ session: Tracked, oneInFlight: Bool) -> Bool {
        !session.abandoned && !(oneInFlight && !session.outstanding.isEmpty)
    }

    private static func suspendAt(_ session: Tracked) -> Instant {
        session.guaranteedUntil.advanced(by: .zero - RenewalRule.suspendMargin(session.ttl))
    }
}

/// The numbers of the renewal rule, the same on every backend.
@_spi(Backend) public enum RenewalRule {
    /// Keep-alives go out every third of the TTL (etcd's own client does the same; Consul's
    /// `RenewPeriodic` uses half, ZooKeeper's clients a third of the timeout).
    public static func interval(_ ttl: Duration) -> Duration { ttl / 3 }

    /// How early a renewal may go out to share a timer tick with others: a twentieth of the
    /// interval, at most 100 ms (for a 30 s TTL, keep-alives every 10 s, up to 0.1 s early).
    public static func coalescingWindow(_ ttl: Duration) -> Duration { min(interval(ttl) / 20, .milliseconds(100)) }

    /// A session is reported `suspended` once less than half its TTL is still guaranteed (a
    /// keep-alive went unanswered for a sixth of the TTL), or at once when a keep-alive fails.
    public static func suspendMargin(_ ttl: Duration) -> Duration { ttl / 2 }
}
