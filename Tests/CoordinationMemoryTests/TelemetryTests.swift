import Coordination
@_spi(Backend) import CoordinationCore
import CoordinationMemory
import CoordinationTestKit
import InMemoryTracing
import Testing
import Tracing

/// The metrics and spans of the recipes, read back from an in-memory metrics backend
/// (``RecordedMetrics``, bootstrapped once per process) and an `InMemoryTracer` bound to the test
/// with `withTracer`.
@Suite("metrics and tracing", .serialized)
struct TelemetryTests {
    typealias Metric = Telemetry.Metric
    let lock: [(String, String)] = [("backend", "memory"), ("recipe", "lock")]

    func dims(_ base: [(String, String)], _ extra: (String, String)...) -> [(String, String)] { base + extra }

    @Test func lockGrantsWaitsHandOffsAndHoldTimes() async throws {
        RecordedMetrics.reset()
        try await MemoryStore().withRunning { store in
            let name = try Key("locks/metrics")
            let first = try await store.makeSession(ttl: .seconds(30))
            let second = try await store.makeSession(ttl: .seconds(30))
            let held = try await Lock(name, session: first, store: store).acquire()
            #expect(RecordedMetrics.total(Metric.grants, lock) == 1)
            #expect(RecordedMetrics.total(Metric.acquires, dims(lock, ("outcome", "granted"))) == 1)
            #expect(RecordedMetrics.total(Metric.handoffs, lock) == 0)

            // A try while held is not granted; a wait with a deadline times out.
            #expect(try await Lock(name, session: second, store: store).tryAcquire() == nil)
            #expect(RecordedMetrics.total(Metric.acquires, dims(lock, ("outcome", "notGranted"))) == 1)
            await #expect(throws: CoordinationError.self) {
                try await Lock(name, session: second, store: store).acquire(timeout: .milliseconds(50))
            }
            #expect(RecordedMetrics.total(Metric.acquires, dims(lock, ("outcome", "timeout"))) == 1)
            #expect(RecordedMetrics.recordings(Metric.acquireWait, dims(lock, ("outcome", "timeout"))) == 1)

            // A waiter granted on release is a hand-off; both holds are timed.
            async let waiter = Lock(name, session: second, store: store).acquire()
            try await waitUntil { try await store.line.contenders(in: name).count == 2 }
            try await held.release()
            let handedOff = try await waiter
            #expect(RecordedMetrics.total(Metric.grants, lock) == 2)
            #expect(RecordedMetrics.total(Metric.handoffs, lock) == 1)
            try await handedOff.release()
            #expect(RecordedMetrics.recordings(Metric.hold, dims(lock, ("end", "released"))) == 2)
            #expect(RecordedMetrics.total(Metric.lost, lock) == 0)
        }
    }

    @Test func aLossWhileGuardedIsCountedAndTimed() async throws {
        RecordedMetrics.reset()
        try await MemoryStore().withRunning { store in
            let name = try Key("locks/lost")
            let session = try await store.makeSession(ttl: .seconds(30))
            await #expect(throws: CoordinationError.self) {
                try await Lock(name, session: session, store: store).withLock { grant in
                    try await store.delete(grant.key)  // an operator removes the holder's key
                    try await Task.sleep(for: .seconds(30))
                }
            }
            #expect(RecordedMetrics.total(Metric.lost, lock) == 1)
            #expect(RecordedMetrics.recordings(Metric.hold, dims(lock, ("end", "lost"))) == 1)
        }
    }

    @Test func electionsSemaphoresAndSessionExpiries() async throws {
        RecordedMetrics.reset()
        try await MemoryStore().withRunning { store in
            let session = try await store.makeSession(ttl: .milliseconds(200))
            let leadership = try await Election(try Key("elections/e"), store: store).campaign(
                value: [1], session: session)
            let election: [(String, String)] = [("backend", "memory"), ("recipe", "election")]
            #expect(RecordedMetrics.total(Metric.grants, election) == 1)
            try await leadership.resign()
            #expect(RecordedMetrics.recordings(Metric.hold, dims(election, ("end", "released"))) == 1)

            let permit = try await Semaphore(try Key("semaphores/s"), permits: 2, session: session, store: store)
                .acquire()
            #expect(RecordedMetrics.total(Metric.grants, [("backend", "memory"), ("recipe", "semaphore")]) == 1)
            try await permit.release()

            session.abandon()  // as a crash: the store ends it a TTL later
            _ = await session.waitUntilEnded()
            #expect(RecordedMetrics.total(Metric.sessionExpiries, [("backend", "memory")]) == 1)
        }
    }

    @Test func acquireAndCampaignAreSpansWithRecipeBackendAndOutcome() async throws {
        let tracer = InMemoryTracer()
        try await withTracer(tracer) {
            try await MemoryStore().withRunning { store in
                let session = try await store.makeSession(ttl: .seconds(30))
                let other = try await store.makeSession(ttl: .seconds(30))
                let name = try Key("locks/traced")
                let grant = try await Lock(name, session: session, store: store).acquire()
                await #expect(throws: CoordinationError.self) {
                    try await Lock(name, session: other, store: store).acquire(timeout: .milliseconds(50))
                }
                try await grant.release()
                _ = try await Election(try Key("elections/traced"), store: store).campaign(value: [], session: session)
            }
        }
        let spans = tracer.finishedSpans
        let acquires = spans.filter { $0.operationName == "coordination.lock.acquire" }
        #expect(acquires.count == 2)
        #expect(acquires.allSatisfy { $0.attributes["coordination.backend"]?.toSpanAttribute() == .string("memory") })
        #expect(acquires.allSatisfy { $0.attributes["coordination.recipe"]?.toSpanAttribute() == .string("lock") })
        #expect(acquires.first?.attributes["coordination.outcome"]?.toSpanAttribute() == .string("granted"))
        #expect(acquires.first?.attributes["coordination.fencing_token"]?.toSpanAttribute() != nil)
        #expect(acquires.last?.attributes["coordination.outcome"]?.toSpanAttribute() == .string("timeout"))
        #expect(acquires.last?.errors.isEmpty == false, "the timeout is recorded on its span")
        let campaigns = spans.filter { $0.operationName == "coordination.election.campaign" }
        #expect(
            campaigns.count == 1
                && campaigns.first?.attributes["coordination.recipe"]?.toSpanAttribute() == .string("election"))
    }

    @Test func withoutATracerNothingIsTraced() {
        #expect(!Telemetry.isTracing)
    }

    private func waitUntil(_ condition: () async throws -> Bool) async throws {
        let start = ContinuousClock.now
        while try await !condition() {
            if ContinuousClock.now - start > .seconds(10) { throw ConformanceFailure("condition not met in 10 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
