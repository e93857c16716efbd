@_spi(Backend) import CoordinationCore
import Testing

/// The session's liveness is a deadline read on the monotonic clock when asked, not a flag a timer
/// sets: a process that was paused past its guarantee reads `expired` on its very first check.
@Suite("Session deadline")
struct SessionDeadlineTests {
    /// No server: these tests only read the session's own state.
    struct NoBackend: SessionBackend {
        func closeSession(_ id: SessionID) async throws(CoordinationError) {}
        func abandonSession(_ id: SessionID) {}
    }

    @Test("past its guarantee a session is expired on the first read, with no timer involved")
    func pastTheGuarantee() async throws {
        let session = Session(
            id: SessionID("s"), ttl: .seconds(1), backend: NoBackend(),
            guaranteedUntil: .now.advanced(by: .milliseconds(50)))
        #expect(session.isActive)
        #expect(session.state == .alive)
        try await Task.sleep(for: .milliseconds(80))
        #expect(!session.isActive)
        #expect(session.state == .expired)
        #expect(throws: CoordinationError.self) { try session.checkActive() }
        #expect(await session.waitUntilEnded() == .expired)
    }

    @Test("an acknowledged keep-alive moves the guarantee forward, never back")
    func guaranteeOnlyGrows() {
        let start = ContinuousClock.now
        let session = Session(
            id: SessionID("s"), ttl: .seconds(1), backend: NoBackend(), guaranteedUntil: start.advanced(by: .seconds(1))
        )
        session.extendGuarantee(until: start.advanced(by: .seconds(5)))
        #expect(session.guaranteedUntil == start.advanced(by: .seconds(5)))
        session.extendGuarantee(until: start.advanced(by: .seconds(2)))
        #expect(session.guaranteedUntil == start.advanced(by: .seconds(5)))
        #expect(session.isActive)
    }

    @Test("a session without a guarantee (in-memory) ends only when told")
    func noGuarantee() {
        let session = Session(id: SessionID("s"), ttl: .seconds(1), backend: NoBackend())
        #expect(session.guaranteedUntil == nil)
        #expect(session.isActive)
        session.transition(to: .expired)
        #expect(!session.isActive)
    }
}
