import CoordinationCore
import CoordinationMemory
import Synchronization

/// A ``MemoryStore`` whose `run()` is kept going between ``start()`` and ``stop()``.
///
/// package-benchmark calls a benchmark's closure once per iteration and offers only separate
/// setup and teardown hooks, so the store cannot live inside one `withRunning { }` scope. The run
/// loop goes into a task that ``stop()`` always awaits after closing the store: nothing outlives
/// the benchmark. `coordination-bench` uses `withRunning` instead.
public final class BackgroundStore: Sendable {
    public let store: MemoryStore
    private let runner = Mutex<Task<Void, any Error>?>(nil)

    public init() {
        self.store = MemoryStore()
    }

    /// Starts the store's run loop.
    public func start() {
        let store = self.store
        runner.withLock { runner in
            precondition(runner == nil, "BackgroundStore started twice")
            runner = Task { try await store.run() }
        }
    }

    /// Closes the store and waits for its run loop to return.
    public func stop() async {
        await store.close()
        let task = runner.withLock { runner in
            defer { runner = nil }
            return runner
        }
        _ = try? await task?.value
    }
}
