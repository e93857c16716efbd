import CoordinationCore
import Testing

@testable import CoordinationEtcdV2

/// The refresh schedule and the safety rule, without a server.
struct V2SessionScheduleTests {
    struct NoBackend: SessionBackend {
        func closeSession(_ id: SessionID) async throws(CoordinationError) {}
        func abandonSession(_ id: SessionID) {}
    }

    static func tracked(_ name: String, sentAt: ContinuousClock.Instant, ttl: Int64 = 3) -> V2SessionKeeper.Tracked {
        V2SessionKeeper.Tracked(
            session: Session(id: SessionID(name), ttl: .seconds(ttl), backend: NoBackend()), ttlSeconds: ttl,
            lastAckedSend: sentAt, nextRefresh: sentAt + .seconds(ttl) / 3)
    }

    @Test("a refresh falls due every third of the TTL; expiry comes one TTL after the last acknowledged send")
    func schedule() {
        let start = ContinuousClock.now
        var sessions = [SessionID("a"): Self.tracked("a", sentAt: start)]
        var plan = V2SessionKeeper.plan(&sessions, now: start)
        #expect(plan.due.isEmpty && plan.expired.isEmpty)
        #expect(plan.next == start + .seconds(1))
        plan = V2SessionKeeper.plan(&sessions, now: start + .seconds(1))
        #expect(plan.due == [SessionID("a")])
        #expect(sessions[SessionID("a")]?.refreshing == true)
        // While that refresh is in flight, nothing else is due; the next deadline is the expiry.
        plan = V2SessionKeeper.plan(&sessions, now: start + .milliseconds(1500))
        #expect(plan.due.isEmpty)
        #expect(plan.next == start + .seconds(3))
        // No acknowledgement arrived: one TTL after the last acknowledged send it is expired.
        plan = V2SessionKeeper.plan(&sessions, now: start + .seconds(3))
        #expect(plan.expired.map(\.id) == [SessionID("a")])
        #expect(sessions.isEmpty)
    }

    @Test("an abandoned session is never refreshed and still expires on time")
    func abandoned() {
        let start = ContinuousClock.now
        var sessions = [SessionID("b"): Self.tracked("b", sentAt: start, ttl: 2)]
        sessions[SessionID("b")]?.abandoned = true
        var plan = V2SessionKeeper.plan(&sessions, now: start + .seconds(1))
        #expect(plan.due.isEmpty)
        #expect(plan.next == start + .seconds(2))
        plan = V2SessionKeeper.plan(&sessions, now: start + .seconds(2))
        #expect(plan.expired.count == 1)
    }
}
