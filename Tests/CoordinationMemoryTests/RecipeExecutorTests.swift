import Coordination
import CoordinationCore
import CoordinationMemory
import CoordinationTestKit
import Dispatch
import Synchronization
import Testing

/// A task executor on a serial dispatch queue that can tell whether code runs on it.
private final class QueueExecutor: TaskExecutor {
    static let key = DispatchSpecificKey<Bool>()
    let queue = DispatchQueue(label: "swift-coordination.recipe-executor-test")

    init() { queue.setSpecific(key: Self.key, value: true) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    static var isCurrent: Bool { DispatchQueue.getSpecific(key: key) == true }
}

/// The recipes make their store calls under the store's `taskExecutor` (a backend on SwiftNIO names
/// its event loop there, so a hand-off continues on the thread that received the reply).
@Suite("Recipes run on the store's task executor", .timeLimit(.minutes(1)))
struct RecipeExecutorTests {
    @Test("a contended lock, its release and an election call the store only on its executor")
    func recipesUseTheStoresExecutor() async throws {
        let executor = QueueExecutor()
        let made = Mutex<[String]>([])
        let offExecutor = Mutex<[String]>([])
        let store = InstrumentedStore(MemoryStore(), taskExecutor: executor) { call in
            made.withLock { $0.append(call) }
            if !QueueExecutor.isCurrent { offExecutor.withLock { $0.append(call) } }
        }
        try await store.withRunning { store in
            let first = try await store.makeSession(ttl: .seconds(30))
            let second = try await store.makeSession(ttl: .seconds(30))
            // The test's own calls above ran on the global executor; only the recipes' count.
            made.withLock { $0.removeAll() }
            offExecutor.withLock { $0.removeAll() }

            let name = try Key("executor/lock")
            let held = try await Lock(name, session: first, store: store).acquire()
            let waiter = Task { try await Lock(name, session: second, store: store).acquire() }
            // Release only once the waiter stands in line behind the holder.
            while try await store.line.contenders(in: name).count < 2 { await Task.yield() }
            made.withLock { $0.removeAll { $0 == "contenders" } }
            offExecutor.withLock { $0.removeAll { $0 == "contenders" } }
            try await held.release()
            let next = try await waiter.value
            try await next.release()

            let election = Election(try Key("executor/election"), store: store)
            let leadership = try await election.campaign(value: Array("a".utf8), session: first)
            try await leadership.proclaim(Array("b".utf8))
            try await leadership.resign()
        }
        let calls = made.withLock { $0 }
        #expect(calls.contains("joinLine"))
        #expect(calls.contains("atomicDelete"))
        #expect(calls.contains("atomicPut"))
        #expect(offExecutor.withLock { $0 } == [], "store calls made off the store's executor")
    }
}
