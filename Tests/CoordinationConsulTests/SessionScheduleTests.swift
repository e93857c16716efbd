import Testing

@testable import CoordinationConsul

/// A manual clock's instant for the pure schedule.
struct TestInstant: InstantProtocol {
    var offset: Duration
    func advanced(by duration: Duration) -> TestInstant { TestInstant(offset: offset + duration) }
    func duration(to other: TestInstant) -> Duration { other.offset - offset }
    static func < (lhs: TestInstant, rhs: TestInstant) -> Bool { lhs.offset < rhs.offset }
    static func at(_ milliseconds: Int64) -> TestInstant { TestInstant(offset: .milliseconds(milliseconds)) }
}

@Suite("consul session schedule")
struct SessionScheduleTests {
    @Test("renews every TTL/2, counting from send times")
    func renewsAtHalfTTL() {
        var schedule = SessionSchedule<TestInstant>()
        schedule.add("s", ttl: .seconds(10), requestedAt: .at(0))
        #expect(schedule.tick(now: .at(4_999)).renew.isEmpty)
        #expect(schedule.tick(now: .at(5_000)).renew == ["s"])
        // One renew in flight at a time.
        #expect(schedule.tick(now: .at(5_500)).renew.isEmpty)
        // Answered late (at 7 s): the next renewal is still due 5 s after the send.
        let recovered = schedule.renewed("s", sentAt: .at(5_000), now: .at(7_000))
        #expect(!recovered)
        #expect(schedule.sessions["s"]?.guaranteedUntil == .at(15_000))
        #expect(schedule.tick(now: .at(9_999)).renew.isEmpty)
        #expect(schedule.tick(now: .at(10_000)).renew == ["s"])
    }

    @Test("expired no later than TTL after the last acknowledged send, suspended a quarter TTL before")
    func safetyRule() {
        var schedule = SessionSchedule<TestInstant>()
        schedule.add("s", ttl: .seconds(4), requestedAt: .at(0))
        #expect(schedule.tick(now: .at(2_000)).renew == ["s"])
        schedule.renewFailed("s", now: .at(2_100), retryDelay: .milliseconds(200))
        #expect(schedule.tick(now: .at(2_300)).renew == ["s"])
        schedule.renewFailed("s", now: .at(2_400), retryDelay: .seconds(10))
        #expect(schedule.tick(now: .at(2_999)).suspend.isEmpty)
        #expect(schedule.tick(now: .at(3_000)).suspend == ["s"])
        #expect(schedule.tick(now: .at(3_999)).expire.isEmpty)
        #expect(schedule.tick(now: .at(4_000)).expire == ["s"])
        #expect(schedule.sessions["s"] == nil)
        #expect(schedule.nextDeadline() == nil)
    }

    @Test("a suspension ends only when a renewal restores more than the margin")
    func recovery() {
        var schedule = SessionSchedule<TestInstant>()
        schedule.add("s", ttl: .seconds(4), requestedAt: .at(0))
        _ = schedule.tick(now: .at(2_000))  // renew sent at 2 s, unanswered
        #expect(schedule.tick(now: .at(3_000)).suspend == ["s"])
        // The answer to the 2 s send guarantees until 6 s: at 3.5 s that is 2.5 s > 1 s margin.
        let recovered = schedule.renewed("s", sentAt: .at(2_000), now: .at(3_500))
        #expect(recovered)
        #expect(schedule.sessions["s"]?.suspended == false)
    }

    @Test("an abandoned session is never renewed and expires on time")
    func abandoned() {
        var schedule = SessionSchedule<TestInstant>()
        schedule.add("s", ttl: .seconds(2), requestedAt: .at(0))
        schedule.abandon("s")
        #expect(schedule.tick(now: .at(1_000)).renew.isEmpty)
        #expect(schedule.nextDeadline() == .at(1_500))
        #expect(schedule.tick(now: .at(2_000)).expire == ["s"])
    }

    @Test("randomized: never reported alive past a guarantee the server did not give")
    func randomized() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var schedule = SessionSchedule<TestInstant>()
            let ttl = Duration.milliseconds(Int64.random(in: 1_000...10_000, using: &generator))
            schedule.add("s", ttl: ttl, requestedAt: .at(0))
            var serverUntil = TestInstant.at(0).advanced(by: ttl)
            var now = TestInstant.at(0)
            var pending: [(sent: TestInstant, answerAt: TestInstant)] = []
            var expiredAt: TestInstant?
            while expiredAt == nil && now < .at(120_000) {
                now = now.advanced(by: .milliseconds(Int64.random(in: 1...400, using: &generator)))
                // The server renews on receipt (here: at send time, the earliest it could).
                for (index, request) in pending.enumerated().reversed() where request.answerAt <= now {
                    pending.remove(at: index)
                    if request.sent < serverUntil, Bool.random(using: &generator) {
                        serverUntil = max(serverUntil, request.sent.advanced(by: ttl))
                        _ = schedule.renewed("s", sentAt: request.sent, now: now)
                    } else {
                        schedule.renewFailed("s", now: now, retryDelay: .milliseconds(100))
                    }
                }
                let actions = schedule.tick(now: now)
                if !actions.expire.isEmpty { expiredAt = now }
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
