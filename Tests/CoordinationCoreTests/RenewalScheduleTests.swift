@_spi(Backend) import CoordinationCore
import Testing

@testable import CoordinationCore

/// The keep-alive timing state machine, driven with synthetic instants: no server, no sleeping.
///
/// Most cases use a 9 s TTL so the thresholds are whole milliseconds: renew every 3 s (TTL/3),
/// suspend once less than 4.5 s (TTL/2) is guaranteed.
@Suite("RenewalSchedule: keep-alives on a stream (etcd)")
struct RenewalScheduleTests {
    typealias Schedule = RenewalSchedule<Int64, ContinuousClock.Instant>

    let t0 = ContinuousClock.now
    let ttl = Duration.seconds(9)
    let ttlSeconds: Int64 = 9
    let retryDelay = Duration.milliseconds(200)

    /// `t0` plus `ms` milliseconds.
    func at(_ ms: Int) -> ContinuousClock.Instant { t0.advanced(by: .milliseconds(ms)) }

    /// A schedule holding lease 1, granted by a request sent at `t0`.
    func granted(_ id: Int64 = 1) -> Schedule {
        var schedule = Schedule()
        schedule.add(id, ttl: ttl, requestedAt: t0)
        return schedule
    }

    // MARK: - Renewal

    @Test("a renewal is due exactly a third of the TTL after the grant request, not before")
    func renewalAtOneThird() throws {
        var schedule = Schedule()
        schedule.add(1, ttl: ttl, requestedAt: at(100))
        let lease = try #require(schedule.tracked[1])
        #expect(lease.nextRenewal == at(3100))
        #expect(lease.guaranteedUntil == at(9100))

        #expect(schedule.tick(now: at(3099), canSend: true, retryDelay: retryDelay).renew.isEmpty)
        #expect(schedule.tick(now: at(3100), canSend: true, retryDelay: retryDelay).renew == [1])
        // The next one a third of the TTL later, and nothing twice in between.
        #expect(schedule.tracked[1]?.nextRenewal == at(6100))
        #expect(schedule.tick(now: at(3101), canSend: true, retryDelay: retryDelay).renew.isEmpty)
    }

    @Test("coalescing: renewals due within the window go out in one tick, none earlier than the window")
    func coalescedRenewals() throws {
        var schedule = Schedule()
        // A 9 s TTL renews every 3 s; its window is 100 ms (3 s / 20 = 150 ms, capped).
        #expect(RenewalRule.coalescingWindow(ttl) == .milliseconds(100))
        #expect(RenewalRule.coalescingWindow(.seconds(3)) == .milliseconds(50))
        schedule.add(1, ttl: ttl, requestedAt: at(100))
        schedule.add(2, ttl: ttl, requestedAt: at(160))
        schedule.add(3, ttl: ttl, requestedAt: at(250))
        #expect(schedule.tick(now: at(2999), canSend: true, retryDelay: retryDelay, coalescing: true).renew.isEmpty)
        let first = schedule.tick(now: at(3100), canSend: true, retryDelay: retryDelay, coalescing: true)
        #expect(first.renew == [1, 2], "due at 3.100 and 3.160 s: one tick")
        #expect(schedule.tick(now: at(3100), canSend: true, retryDelay: retryDelay).renew.isEmpty, "not twice")
        #expect(schedule.tick(now: at(3150), canSend: true, retryDelay: retryDelay, coalescing: true).renew == [3])
        #expect(schedule.nextDeadline() != nil)
    }

    @Test("without an open stream no renewal is scheduled; it is retried after retryDelay")
    func renewalWaitsForStream() {
        var schedule = granted()
        #expect(schedule.tick(now: at(3000), canSend: false, retryDelay: retryDelay).renew.isEmpty)
        #expect(schedule.tracked[1]?.nextRenewal == at(3200))
        #expect(schedule.nextDeadline() == at(3200))
        // A stream opens meanwhile, but the retry is not due yet.
        #expect(schedule.tick(now: at(3100), canSend: true, retryDelay: retryDelay).renew.isEmpty)
        #expect(schedule.tick(now: at(3200), canSend: true, retryDelay: retryDelay).renew == [1])
        #expect(schedule.tracked[1]?.nextRenewal == at(6200))
    }

    // MARK: - Acknowledgements

    @Test("an acknowledgement guarantees the lease until send time + TTL, not acknowledgement time + TTL")
    func lateAckCountsFromSendTime() throws {
        var schedule = granted()
        #expect(schedule.tick(now: at(3000), canSend: true, retryDelay: retryDelay).renew == [1])
        schedule.sent(1, at: at(3000))

        // The acknowledgement arrives 4 s late, at 7 s: the server may have renewed the lease as
        // early as 3 s, so only 3 s + TTL is proven.
        let result = schedule.acknowledge(1, ttl: .seconds(ttlSeconds))
        #expect(result.alive)
        let lease = try #require(schedule.tracked[1])
        #expect(lease.guaranteedUntil == at(12_000))
        #expect(lease.outstanding.isEmpty)

        // Acknowledged at about 7 s, yet it expires at 12 s, not 16 s.
        let before = schedule.tick(now: at(11_999), canSend: false, retryDelay: retryDelay)
        #expect(before.expire.isEmpty)
        #expect(schedule.tick(now: at(12_000), canSend: false, retryDelay: retryDelay).expire == [1])
        #expect(schedule.tracked[1] == nil)
    }

    @Test("acknowledgements are matched to outstanding sends in order")
    func acksMatchSendsInOrder() throws {
        var schedule = granted()
        schedule.sent(1, at: at(3000))
        schedule.sent(1, at: at(6000))
        #expect(schedule.tracked[1]?.outstanding == [at(3000), at(6000)])

        _ = schedule.acknowledge(1, ttl: .seconds(ttlSeconds))
        #expect(schedule.tracked[1]?.guaranteedUntil == at(12_000))
        #expect(schedule.tracked[1]?.outstanding == [at(6000)])

        _ = schedule.acknowledge(1, ttl: .seconds(ttlSeconds))
        #expect(schedule.tracked[1]?.guaranteedUntil == at(15_000))
        #expect(schedule.tracked[1]?.outstanding.isEmpty == true)
    }

    @Test("an acknowledgement never shortens the guarantee")
    func ackNeverShortens() {
        var schedule = granted()
        schedule.sent(1, at: at(1000))
        // The server answers with a shorter TTL than granted: 1 s + 1 s < 9 s.
        #expect(schedule.acknowledge(1, ttl: .seconds(1)).alive)
        #expect(schedule.tracked[1]?.guaranteedUntil == at(9000))
    }

    @Test("an acknowledgement with no outstanding send gives no new guarantee")
    func unmatchedAckGivesNoGuarantee() {
        var schedule = granted()
        #expect(schedule.acknowledge(1, ttl: .seconds(ttlSeconds)).alive)
        #expect(schedule.tracked[1]?.guaranteedUntil == at(9000))

        // A send on a stream that broke is forgotten; a late answer to it counts for nothing.
        schedule.sent(1, at: at(3000))
        schedule.streamReset(now: at(3500))
        #expect(schedule.acknowledge(1, ttl: .seconds(ttlSeconds)).alive)
        #expect(schedule.tracked[1]?.guaranteedUntil == at(9000))
    }

    @Test("an acknowledgement with TTL <= 0 means the server says the lease is gone", arguments: [0, -1] as [Int64])
    func ackWithoutTTLMeansGone(ttlSeconds: Int64) {
        var schedule = granted()
        schedule.sent(1, at: at(3000))
        let result = schedule.acknowledge(1, ttl: .seconds(ttlSeconds))
        #expect(result.alive == false)
        #expect(result.recovered == false)
    }

    // MARK: - Suspension and expiry

    @Test("suspended exactly once when less than half the TTL is guaranteed; recovered on the next ack")
    func suspendOnceThenRecover() {
        var schedule = granted()
        #expect(schedule.tick(now: at(3000), canSend: true, retryDelay: retryDelay).renew == [1])
        schedule.sent(1, at: at(3000))

        // No answer. 4.501 s guaranteed at 4.499 s: still alive.
        #expect(schedule.tick(now: at(4499), canSend: true, retryDelay: retryDelay).suspend.isEmpty)
        // 4.499 s guaranteed: suspended.
        #expect(schedule.tick(now: at(4501), canSend: true, retryDelay: retryDelay).suspend == [1])
        #expect(schedule.tracked[1]?.suspended == true)
        // Only once, even while renewals keep going out.
        #expect(schedule.tick(now: at(5000), canSend: true, retryDelay: retryDelay) == .init())
        #expect(schedule.tick(now: at(6000), canSend: true, retryDelay: retryDelay) == .init(renew: [1]))
        schedule.sent(1, at: at(6000))
        #expect(schedule.tick(now: at(7000), canSend: true, retryDelay: retryDelay).suspend.isEmpty)

        // The first answer arrives: recovered, guaranteed from its send time.
        let first = schedule.acknowledge(1, ttl: .seconds(ttlSeconds))
        #expect(first.alive && first.recovered)
        #expect(schedule.tracked[1]?.suspended == false)
        #expect(schedule.tracked[1]?.guaranteedUntil == at(12_000))
        // The second is an ordinary renewal.
        let second = schedule.acknowledge(1, ttl: .seconds(ttlSeconds))
        #expect(second.alive && !second.recovered)
        #expect(schedule.tracked[1]?.guaranteedUntil == at(15_000))
    }

    @Test("an acknowledgement that leaves too little guaranteed does not end a suspension (no flapping)")
    func lateAckDoesNotFlap() {
        var schedule = granted()
        // Renewal at 3 s is sent but answered only at 8 s: suspended at 4.5 s.
        #expect(schedule.tick(now: at(3000), canSend: true, retryDelay: retryDelay).renew == [1])
        schedule.sent(1, at: at(3000))
        #expect(schedule.tick(now: at(7500), canSend: true, retryDelay: retryDelay).suspend == [1])
        // The ack guarantees until 3 s + 9 s = 12 s; at 8 s that is 4 s, under the 4.5 s margin.
        let late = schedule.acknowledge(1, ttl: .seconds(ttlSeconds), now: at(8000))
        #expect(late.alive && !late.recovered)
        #expect(schedule.tick(now: at(8000), canSend: true, retryDelay: retryDelay).suspend.isEmpty)
        // A prompt ack of the next renewal does end it.
        schedule.sent(1, at: at(8000))
        let prompt = schedule.acknowledge(1, ttl: .seconds(ttlSeconds), now: at(8010))
        #expect(prompt.alive && prompt.recovered)
    }

    @Test("a lease is removed and reported expired exactly at its guaranteed time, once")
    func expiresAtGuaranteedTime() {
        var schedule = granted()
        #expect(schedule.tick(now: at(8999), canSend: false, retryDelay: retryDelay).expire.isEmpty)
        #expect(schedule.tracked[1] != nil)
        let actions = schedule.tick(now: at(9000), canSend: true, retryDelay: retryDelay)
        #expect(actions == .init(expire: [1]))
        #expect(schedule.tracked[1] == nil)
        #expect(schedule.tick(now: at(9001), canSend: true, retryDelay: retryDelay) == .init())
        #expect(schedule.nextDeadline() == nil)
    }

    @Test("an abandoned lease is never renewed and still expires on time")
    func abandonedLease() {
        var schedule = granted()
        schedule.abandon(1)
        var renewed: [Int64] = []
        var suspended: [Int64] = []
        var expiredAt: [Int] = []
        for ms in stride(from: 0, through: 12_000, by: 250) {
            let actions = schedule.tick(now: at(ms), canSend: true, retryDelay: retryDelay)
            renewed += actions.renew
            suspended += actions.suspend
            if !actions.expire.isEmpty { expiredAt.append(ms) }
        }
        #expect(renewed.isEmpty)
        #expect(suspended == [1])
        #expect(expiredAt == [9000])
    }

    @Test("streamReset forgets outstanding sends and makes renewal due at once, except for abandoned leases")
    func streamReset() throws {
        var schedule = Schedule()
        schedule.add(1, ttl: ttl, requestedAt: t0)
        schedule.add(2, ttl: ttl, requestedAt: t0)
        schedule.abandon(2)
        schedule.sent(1, at: at(1000))
        schedule.sent(2, at: at(1000))

        schedule.streamReset(now: at(1500))
        let live = try #require(schedule.tracked[1])
        let abandoned = try #require(schedule.tracked[2])
        #expect(live.outstanding.isEmpty)
        #expect(abandoned.outstanding.isEmpty)
        #expect(live.nextRenewal == at(1500))
        #expect(abandoned.nextRenewal == at(3000))
        #expect(live.guaranteedUntil == at(9000))

        #expect(schedule.tick(now: at(1500), canSend: true, retryDelay: retryDelay).renew == [1])
    }

    // MARK: - Deadlines

    @Test("nextDeadline is the earliest renewal, suspension or expiry over all leases, nil when empty")
    func nextDeadline() {
        var schedule = Schedule()
        #expect(schedule.nextDeadline() == nil)

        schedule.add(1, ttl: ttl, requestedAt: t0)  // renew 3 s, suspend 4.5 s, expire 9 s
        #expect(schedule.nextDeadline() == at(3000))
        schedule.add(2, ttl: .seconds(3), requestedAt: at(1000))  // renew 2 s, suspend 2.5 s, expire 4 s
        #expect(schedule.nextDeadline() == at(2000))

        // Abandoned: its renewal no longer counts, its suspension does.
        schedule.abandon(2)
        #expect(schedule.nextDeadline() == at(2500))
        // Suspended: its suspension no longer counts; lease 1's renewal is next.
        #expect(schedule.tick(now: at(2500), canSend: true, retryDelay: retryDelay) == .init(suspend: [2]))
        #expect(schedule.nextDeadline() == at(3000))
        #expect(schedule.tick(now: at(3000), canSend: true, retryDelay: retryDelay) == .init(renew: [1]))
        #expect(schedule.nextDeadline() == at(4000))  // lease 2's expiry

        schedule.remove(1)
        schedule.remove(2)
        #expect(schedule.nextDeadline() == nil)
    }

    @Test("ticking at nextDeadline always acts, so a timer sleeping until it never spins")
    func deadlinesMakeProgress() {
        var schedule = granted()
        var deadlines: [Int] = []
        var log: [Schedule.Actions] = []
        while let deadline = schedule.nextDeadline(), deadlines.count < 20 {
            deadlines.append(Int(t0.duration(to: deadline) / .milliseconds(1)))
            let actions = schedule.tick(now: deadline, canSend: true, retryDelay: retryDelay)
            for id in actions.renew { schedule.sent(id, at: deadline) }  // never answered
            log.append(actions)
            if let next = schedule.nextDeadline() { #expect(next > deadline) }
        }
        #expect(deadlines == [3000, 4500, 6000, 9000])
        #expect(log == [.init(renew: [1]), .init(suspend: [1]), .init(renew: [1]), .init(expire: [1])])
    }

    // MARK: - Safety

    /// A tiny deterministic PRNG (xorshift64) so the randomized run is the same on every machine.
    struct XorShift64: RandomNumberGenerator {
        private var state: UInt64

        /// Seeds through one splitmix64 step, so neighbouring seeds give unrelated sequences.
        init(seed: UInt64) {
            var z = seed &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            state = z ^ (z >> 31)
            if state == 0 { state = 1 }
        }

        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
    }

    @Test("randomized: a lease is never reported alive past (last acknowledged send + TTL)")
    func safetyUnderRandomDelays() {
        var totals = SafetySimulation.Totals()
        for seed in UInt64(1)...300 {
            var simulation = SafetySimulation(seed: seed, start: t0)
            simulation.run()
            totals.add(simulation)
            if !simulation.violations.isEmpty {
                Issue.record("seed \(seed): \(simulation.violations.prefix(3).joined(separator: "; "))")
            }
        }
        // The runs must exercise every path, or the property was checked vacuously.
        #expect(totals.acknowledged > 1000)
        #expect(totals.suspended > 0)
        #expect(totals.recovered > 0)
        #expect(totals.expiredBySchedule > 0)
        #expect(totals.goneByServer > 0)
        #expect(totals.streamResets > 0)
        #expect(totals.survived > 0)
    }
}

/// One lease against a simulated server over a keep-alive stream with random one-way delays and
/// occasional stream breaks. The client side does what `LeaseKeeper` does — record sends at the tick
/// instant, feed acknowledgements back in arrival order, reset on a new stream — and ticks at every
/// event, which includes every deadline the keeper would sleep until.
private struct SafetySimulation {
    typealias Instant = ContinuousClock.Instant

    struct Totals {
        var acknowledged = 0
        var suspended = 0
        var recovered = 0
        var expiredBySchedule = 0
        var goneByServer = 0
        var streamResets = 0
        var survived = 0

        mutating func add(_ simulation: SafetySimulation) {
            acknowledged += simulation.acknowledged
            suspended += simulation.suspended
            recovered += simulation.recovered
            streamResets += simulation.streamResets
            switch simulation.outcome {
            case .expiredBySchedule: expiredBySchedule += 1
            case .goneByServer: goneByServer += 1
            case .survived: survived += 1
            }
        }
    }

    enum Outcome { case survived, expiredBySchedule, goneByServer }

    private struct KeepAlive {
        let sentAt: Instant
        let arrivesAt: Instant
    }

    private struct Ack {
        let sentAt: Instant
        let arrivesAt: Instant
        let ttlSeconds: Int64
    }

    static let id: Int64 = 7
    static let retryDelay = Duration.milliseconds(200)

    var rng: RenewalScheduleTests.XorShift64
    let ttlSeconds: Int64
    let ttl: Duration
    /// 0: a calm network; up to 3: one where 1 keep-alive in 7 is slow.
    let roughness: Int
    let start: Instant
    let end: Instant
    var now: Instant
    var schedule = RenewalSchedule<Int64, Instant>()

    // The network: FIFO in each direction, dropped when the stream breaks.
    private var toServer: [KeepAlive] = []
    private var toClient: [Ack] = []
    private var streamUp = true
    private var nextStreamEvent: Instant

    // The server's view, and the ground truth the property is checked against.
    private var serverExpiry: Instant
    private var serverGone = false
    /// When an operator revokes the lease (`etcdctl lease revoke`); often after the run ends.
    private let revokedAt: Instant
    private var lastAcknowledgedSend: Instant

    var violations: [String] = []
    var acknowledged = 0
    var suspended = 0
    var recovered = 0
    var streamResets = 0
    var outcome = Outcome.survived

    init(seed: UInt64, start: Instant) {
        rng = .init(seed: seed)
        ttlSeconds = Int64.random(in: 2...15, using: &rng)
        roughness = Int.random(in: 0...3, using: &rng)
        ttl = .seconds(ttlSeconds)
        self.start = start
        now = start
        end = start.advanced(by: .seconds(120))
        // The grant request is the first "send": the server starts the TTL when it receives it.
        lastAcknowledgedSend = start
        serverExpiry = start
        nextStreamEvent = start
        revokedAt = start.advanced(by: .seconds(Int.random(in: 20...400, using: &rng)))
        schedule.add(Self.id, ttl: ttl, requestedAt: start)
        serverExpiry = start.advanced(by: oneWayDelay()).advanced(by: ttl)
        nextStreamEvent = start.advanced(by: randomStreamLifetime())
    }

    /// Mostly fast; on a rough network sometimes slow enough to suspend or expire the lease.
    private mutating func oneWayDelay() -> Duration {
        let roll = Int.random(in: 0..<1000, using: &rng)
        let ttlMilliseconds = Int(ttlSeconds) * 1000
        if roll < 1000 - 50 * roughness {
            return .milliseconds(Int.random(in: 0...50, using: &rng))
        } else if roll < 1000 - 10 * roughness {
            return .milliseconds(Int.random(in: 0...ttlMilliseconds * 2 / 5, using: &rng))
        } else {
            return .milliseconds(Int.random(in: 0...ttlMilliseconds * 6 / 5, using: &rng))
        }
    }

    private mutating func randomStreamLifetime() -> Duration {
        .milliseconds(Int.random(in: 1000...90_000, using: &rng))
    }

    mutating func run() {
        var steps = 0
        while now < end, outcome == .survived, violations.isEmpty, steps < 100_000 {
            steps += 1
            let next = [
                schedule.nextDeadline(), toServer.first?.arrivesAt, toClient.first?.arrivesAt, nextStreamEvent, end,
            ]
            .compactMap { $0 }.min()!
            if next < now {
                violations.append("time went backwards")
                return
            }
            now = next
            deliverToServer()
            deliverToClient()
            if outcome != .survived { return }
            breakOrReopenStream()
            tick()
        }
    }

    /// The server renews the lease when it receives a keep-alive in time, and answers either way.
    private mutating func deliverToServer() {
        while let keepAlive = toServer.first, keepAlive.arrivesAt <= now {
            toServer.removeFirst()
            let ttlSeconds: Int64
            if !serverGone, keepAlive.arrivesAt < serverExpiry, keepAlive.arrivesAt < revokedAt {
                serverExpiry = keepAlive.arrivesAt.advanced(by: ttl)
                ttlSeconds = self.ttlSeconds
            } else {
                serverGone = true
                ttlSeconds = 0
            }
            let earliest = keepAlive.arrivesAt.advanced(by: oneWayDelay())
            let arrivesAt = max(earliest, toClient.last?.arrivesAt ?? earliest)
            toClient.append(Ack(sentAt: keepAlive.sentAt, arrivesAt: arrivesAt, ttlSeconds: ttlSeconds))
        }
    }

    private mutating func deliverToClient() {
        while let ack = toClient.first, ack.arrivesAt <= now {
            toClient.removeFirst()
            let result = schedule.acknowledge(Self.id, ttl: .seconds(ack.ttlSeconds))
            guard result.alive else {
                // The caller reports it expired at once.
                schedule.remove(Self.id)
                outcome = .goneByServer
                return
            }
            acknowledged += 1
            if result.recovered { recovered += 1 }
            lastAcknowledgedSend = max(lastAcknowledgedSend, ack.sentAt)
        }
    }

    /// Breaking drops everything in flight; reopening resets the schedule, as `LeaseKeeper` does.
    private mutating func breakOrReopenStream() {
        guard now >= nextStreamEvent else { return }
        if streamUp {
            streamUp = false
            toServer.removeAll()
            toClient.removeAll()
            let outage = Int(ttlSeconds) * (roughness == 0 ? 300 : 700)
            nextStreamEvent = now.advanced(by: .milliseconds(Int.random(in: 0...outage, using: &rng)))
        } else {
            streamUp = true
            streamResets += 1
            schedule.streamReset(now: now)
            nextStreamEvent = now.advanced(by: randomStreamLifetime())
        }
    }

    private mutating func tick() {
        let actions = schedule.tick(now: now, canSend: streamUp, retryDelay: Self.retryDelay)
        suspended += actions.suspend.count
        if actions.expire == [Self.id] {
            outcome = .expiredBySchedule
            return
        }
        for id in actions.renew {
            schedule.sent(id, at: now)
            let earliest = now.advanced(by: oneWayDelay())
            let arrivesAt = max(earliest, toServer.last?.arrivesAt ?? earliest)
            toServer.append(KeepAlive(sentAt: now, arrivesAt: arrivesAt))
        }
        check()
    }

    /// While the schedule holds the lease, the caller believes it alive until the next deadline at
    /// least; both must lie within what acknowledged sends prove, and within the server's real expiry.
    private mutating func check() {
        guard let lease = schedule.tracked[Self.id] else { return }
        let proven = lastAcknowledgedSend.advanced(by: ttl)
        let (now, guaranteed, proof, server) = (ms(now), ms(lease.guaranteedUntil), ms(proven), ms(serverExpiry))
        if self.now >= proven { violations.append("alive at \(now) ms, past last acknowledged send + TTL \(proof) ms") }
        if lease.guaranteedUntil > proven {
            violations.append("guaranteed until \(guaranteed) ms, past last acknowledged send + TTL \(proof) ms")
        }
        if let deadline = schedule.nextDeadline(), deadline > lease.guaranteedUntil {
            violations.append("next deadline \(ms(deadline)) ms is after the guarantee \(guaranteed) ms")
        }
        if self.now >= serverExpiry {
            violations.append("alive at \(now) ms, but the server expired it at \(server) ms")
        }
    }

    /// Milliseconds since the grant request, for readable failures.
    private func ms(_ instant: Instant) -> Int { Int(start.duration(to: instant) / .milliseconds(1)) }
}
