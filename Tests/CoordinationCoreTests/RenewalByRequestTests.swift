import Testing

@testable import CoordinationCore

/// A manual clock's instant for the pure schedule.
struct ManualInstant: InstantProtocol {
    var offset: Duration
    func advanced(by duration: Duration) -> ManualInstant { ManualInstant(offset: offset + duration) }
    func duration(to other: ManualInstant) -> Duration { other.offset - offset }
    static func < (lhs: ManualInstant, rhs: ManualInstant) -> Bool { lhs.offset < rhs.offset }
    static func at(_ milliseconds: Int64) -> ManualInstant { ManualInstant(offset: .milliseconds(milliseconds)) }
}

/// The renewal rule for backends that renew by request (Consul, etcd v2): one keep-alive in flight
/// per session. With a 9 s TTL: renew every 3 s, suspend once less than 4.5 s is guaranteed.
@Suite("RenewalSchedule: one keep-alive in flight (Consul, etcd v2)")
struct RenewalByRequestTests {
    typealias Schedule = RenewalSchedule<String, ManualInstant>

    /// One tick at `now`, recording the renewals it starts as sent (as the renewer does).
    static func tick(_ schedule: inout Schedule, _ now: ManualInstant) -> Schedule.Actions {
        let actions = schedule.tick(now: now)
        for id in actions.renew { schedule.sent(id, at: now) }
        return actions
    }

    @Test("renews every third of the TTL from the send, one request at a time")
    func cadence() {
        var schedule = Schedule(oneInFlight: true)
        schedule.add("s", ttl: .seconds(9), requestedAt: .at(0))
        #expect(Self.tick(&schedule, .at(2_999)).renew.isEmpty)
        #expect(Self.tick(&schedule, .at(3_000)).renew == ["s"])
        // Unanswered: nothing more goes out, even when the next one would be due.
        let overdue = Self.tick(&schedule, .at(6_000))
        #expect(overdue.renew.isEmpty)
        #expect(overdue.suspend == ["s"])  // less than 4.5 s guaranteed
        #expect(schedule.nextDeadline() == .at(9_000))  // the expiry, not a renewal
        // Answered late (at 6.5 s): held until 3 s + 9 s (5.5 s left: alive again), and the next
        // renewal is due at once.
        let answer1 = schedule.acknowledge("s", now: .at(6_500))
        #expect(answer1 == .init(alive: true, recovered: true))
        #expect(schedule.tracked["s"]?.guaranteedUntil == .at(12_000))
        #expect(Self.tick(&schedule, .at(6_500)).renew == ["s"])
    }

    @Test(
        "a failed request suspends at once and is retried after the delay; expiry one TTL after the last acknowledged send"
    )
    func failure() {
        var schedule = Schedule(oneInFlight: true)
        schedule.add("s", ttl: .seconds(9), requestedAt: .at(0))
        #expect(Self.tick(&schedule, .at(3_000)).renew == ["s"])
        let first = schedule.failed("s", now: .at(3_100), retryDelay: .milliseconds(200))
        #expect(first)
        #expect(schedule.tracked["s"]?.suspended == true)
        #expect(schedule.tracked["s"]?.outstanding.isEmpty == true)
        let again = schedule.failed("s", now: .at(3_100), retryDelay: .milliseconds(200))
        #expect(!again, "suspended once")
        #expect(Self.tick(&schedule, .at(3_299)).renew.isEmpty)
        #expect(Self.tick(&schedule, .at(3_300)).renew == ["s"])
        schedule.failed("s", now: .at(3_400), retryDelay: .seconds(60))
        #expect(Self.tick(&schedule, .at(8_999)).expire.isEmpty)
        #expect(Self.tick(&schedule, .at(9_000)).expire == ["s"])
        #expect(schedule.tracked["s"] == nil)
        #expect(schedule.nextDeadline() == nil)
    }

    @Test(
        "an overdue answer suspends at half the TTL; the answer ends the suspension only if it restores more than that")
    func overdue() {
        var schedule = Schedule(oneInFlight: true)
        schedule.add("s", ttl: .seconds(9), requestedAt: .at(0))
        _ = Self.tick(&schedule, .at(3_000))
        #expect(Self.tick(&schedule, .at(4_499)).suspend.isEmpty)
        #expect(Self.tick(&schedule, .at(4_500)).suspend == ["s"])
        // The 3 s send holds until 12 s; at 8 s that is 4 s, below the 4.5 s margin: still suspended.
        let answer2 = schedule.acknowledge("s", now: .at(8_000))
        #expect(answer2 == .init(alive: true, recovered: false))
        #expect(schedule.tracked["s"]?.suspended == true)
        _ = Self.tick(&schedule, .at(8_000))
        // Answered at once: held until 17 s, 9 s left: alive again.
        let answer3 = schedule.acknowledge("s", now: .at(8_000))
        #expect(answer3 == .init(alive: true, recovered: true))
    }

    @Test("the server saying the session is gone is reported, whatever the guarantee")
    func gone() {
        var schedule = Schedule(oneInFlight: true)
        schedule.add("s", ttl: .seconds(9), requestedAt: .at(0))
        _ = Self.tick(&schedule, .at(3_000))
        let answer4 = schedule.acknowledge("s", ttl: .zero)
        #expect(answer4 == .init(alive: false, recovered: false))
    }

    @Test("an abandoned session is never renewed and still expires on time")
    func abandoned() {
        var schedule = Schedule(oneInFlight: true)
        schedule.add("s", ttl: .seconds(3), requestedAt: .at(0))
        schedule.abandon("s")
        #expect(Self.tick(&schedule, .at(1_000)).renew.isEmpty)
        #expect(schedule.nextDeadline() == .at(1_500))
        #expect(Self.tick(&schedule, .at(3_000)).expire == ["s"])
    }

    @Test("randomized: never reported alive past a guarantee the server did not give")
    func randomized() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var schedule = Schedule(oneInFlight: true)
            let ttl = Duration.milliseconds(Int64.random(in: 1_000...10_000, using: &generator))
            schedule.add("s", ttl: ttl, requestedAt: .at(0))
            var serverUntil = ManualInstant.at(0).advanced(by: ttl)
            var now = ManualInstant.at(0)
            var pending: [(sent: ManualInstant, answerAt: ManualInstant)] = []
            var expiredAt: ManualInstant?
            while expiredAt == nil && now < .at(120_000) {
                now = now.advanced(by: .milliseconds(Int64.random(in: 1...400, using: &generator)))
                for (index, request) in pending.enumerated().reversed() where request.answerAt <= now {
                    pending.remove(at: index)
                    // The server renews on receipt (here: at send time, the earliest it could).
                    if request.sent < serverUntil, Bool.random(using: &generator) {
                        serverUntil = max(serverUntil, request.sent.advanced(by: ttl))
                        _ = schedule.acknowledge("s", now: now)
                    } else {
                        schedule.failed("s", now: now, retryDelay: .milliseconds(100))
                    }
                }
                let actions = Self.tick(&schedule, now)
                if !actions.expire.isEmpty { expiredAt = now }
                #expect(actions.renew.count + pending.count <= 1, "one request in flight at most")
                for _ in actions.renew {
                    pending.append(
                        (now, now.advanced(by: .milliseconds(Int64.random(in: 1...3_000, using: &generator)))))
                }
                if expiredAt == nil {
                    #expect(now < serverUntil, "reported alive at \(now) after the server's guarantee \(serverUntil)")
                }
            }
        }
    }
}
