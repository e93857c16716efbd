/// The pure timing of a store's leases: when to renew each one, when its owner must be told it is
/// suspended, and when it must be reported expired. No I/O and no clock of its own, so the safety
/// rule is unit-tested without a server.
///
/// The safety rule: a lease is reported expired no later than the instant the server could expire
/// it. The server renews a lease when it *receives* a keep-alive, so a keep-alive *sent* at `s` and
/// acknowledged with TTL `t` keeps the lease alive on the server until at least `s + t`. The
/// schedule counts from send times, never from acknowledgement times.
struct LeaseSchedule<Instant: InstantProtocol> where Instant.Duration == Duration {
    struct Lease {
        let ttl: Duration
        /// The server holds the lease at least until then.
        var guaranteedUntil: Instant
        /// When the next keep-alive is due.
        var nextRenewal: Instant
        /// Send times of keep-alives not yet acknowledged, oldest first.
        var outstanding: [Instant] = []
        /// The owner stopped renewing (a crash drill): never renewed again.
        var abandoned = false
        var suspended = false
    }

    /// What the caller must do after a tick.
    struct Actions: Equatable {
        var renew: [Int64] = []
        var suspend: [Int64] = []
        var expire: [Int64] = []
    }

    private(set) var leases: [Int64: Lease] = [:]

    /// Renew at a third of the TTL, as etcd's own client does.
    static func renewalInterval(_ ttl: Duration) -> Duration { ttl / 3 }

    /// Report `suspended` once at most half the TTL is still guaranteed (a renewal went unanswered).
    static func suspendMargin(_ ttl: Duration) -> Duration { ttl / 2 }

    /// Adds a lease granted by a request sent at `requestedAt` with the granted TTL.
    mutating func add(_ id: Int64, ttl: Duration, requestedAt: Instant) {
        leases[id] = Lease(
            ttl: ttl,
            guaranteedUntil: requestedAt.advanced(by: ttl),
            nextRenewal: requestedAt.advanced(by: Self.renewalInterval(ttl))
        )
    }

    @discardableResult
    mutating func remove(_ id: Int64) -> Lease? { leases.removeValue(forKey: id) }

    mutating func abandon(_ id: Int64) { leases[id]?.abandoned = true }

    /// Records that a keep-alive for `id` went out at `now`.
    mutating func sent(_ id: Int64, at now: Instant) {
        leases[id]?.outstanding.append(now)
    }

    /// Applies an acknowledgement. `alive` is `false` if the server says the lease is gone (TTL ≤ 0):
    /// the caller must then report it expired. `recovered` says it was suspended until now and the
    /// acknowledgement brought the guarantee back above the suspend margin (an acknowledgement that
    /// gives no new guarantee, or too little, does not end a suspension: no alive/suspended flapping).
    mutating func acknowledge(_ id: Int64, ttlSeconds: Int64, now: Instant? = nil) -> (alive: Bool, recovered: Bool) {
        guard var lease = leases[id] else { return (true, false) }
        guard ttlSeconds > 0 else { return (false, false) }
        // Acknowledgements arrive in send order on one stream; one without a recorded send time
        // (the stream was replaced meanwhile) gives no new guarantee.
        guard !lease.outstanding.isEmpty else { return (true, false) }
        let sentAt = lease.outstanding.removeFirst()
        let until = sentAt.advanced(by: .seconds(ttlSeconds))
        if until > lease.guaranteedUntil { lease.guaranteedUntil = until }
        var recovered = false
        if lease.suspended {
            let margin = Self.suspendMargin(lease.ttl)
            if now.map({ lease.guaranteedUntil > $0.advanced(by: margin) }) ?? true {
                lease.suspended = false
                recovered = true
            }
        }
        leases[id] = lease
        return (true, recovered)
    }

    /// Forgets keep-alives that can no longer be answered (their stream broke) and renews every
    /// lease at once on the next stream.
    mutating func streamReset(now: Instant) {
        for id in leases.keys {
            leases[id]?.outstanding.removeAll()
            if leases[id]?.abandoned == false { leases[id]?.nextRenewal = now }
        }
    }

    /// Decides what is due at `now`. Expired leases are removed; renewals are scheduled only when
    /// `canSend` (a keep-alive stream is open), otherwise retried after `retryDelay`.
    mutating func tick(now: Instant, canSend: Bool, retryDelay: Duration) -> Actions {
        var actions = Actions()
        for (id, var lease) in leases {
            if now >= lease.guaranteedUntil {
                leases.removeValue(forKey: id)
                actions.expire.append(id)
                continue
            }
            if !lease.suspended, now >= lease.guaranteedUntil.advanced(by: .zero - Self.suspendMargin(lease.ttl)) {
                lease.suspended = true
                actions.suspend.append(id)
            }
            if !lease.abandoned, now >= lease.nextRenewal {
                if canSend {
                    actions.renew.append(id)
                    lease.nextRenewal = now.advanced(by: Self.renewalInterval(lease.ttl))
                } else {
                    lease.nextRenewal = now.advanced(by: retryDelay)
                }
            }
            leases[id] = lease
        }
        actions.renew.sort()
        actions.suspend.sort()
        actions.expire.sort()
        return actions
    }

    /// The next instant anything can become due, if any lease exists.
    func nextDeadline() -> Instant? {
        var next: Instant?
        for lease in leases.values {
            var candidates = [lease.guaranteedUntil]
            if !lease.abandoned { candidates.append(lease.nextRenewal) }
            if !lease.suspended {
                candidates.append(lease.guaranteedUntil.advanced(by: .zero - Self.suspendMargin(lease.ttl)))
            }
            for candidate in candidates where next.map({ candidate < $0 }) ?? true { next = candidate }
        }
        return next
    }
}
