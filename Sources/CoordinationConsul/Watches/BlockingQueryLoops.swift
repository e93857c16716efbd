@_spi(Backend) import CoordinationCore
import Synchronization

/// Owns the store's long-running blocking-query loops, so that none is an unstructured task: each
/// loop runs as a child of the store's `run()` and ends when its consumer stops, or when the store
/// closes (its stream then fails with `storeClosed`).
final class BlockingQueryLoops: Sendable {
    struct Job: Sendable {
        let id: Int
        let stop: WakeSignal
        let body: @Sendable () async -> Void
    }

    private struct State {
        var nextID = 0
        var closed = false
        var failers: [Int: @Sendable (CoordinationError) -> Void] = [:]
    }

    private let state = Mutex(State())
    private let jobs: AsyncStream<Job>
    private let submit: AsyncStream<Job>.Continuation

    init() {
        (jobs, submit) = AsyncStream<Job>.makeStream(bufferingPolicy: .unbounded)
    }

    /// Registers a loop. `fail` ends its consumer's stream when the store closes; the returned
    /// signal must be raised when the consumer goes away (stops the loop).
    func add(
        fail: @escaping @Sendable (CoordinationError) -> Void,
        body: @escaping @Sendable () async -> Void
    ) throws(CoordinationError) -> WakeSignal {
        let stop = WakeSignal()
        let id: Int? = state.withLock { state in
            guard !state.closed else { return nil }
            defer { state.nextID += 1 }
            state.failers[state.nextID] = fail
            return state.nextID
        }
        guard let id else { throw CoordinationError(.storeClosed, "the store was closed") }
        submit.yield(Job(id: id, stop: stop, body: body))
        return stop
    }

    /// Serves loops until the store stops.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask {
                    await withTaskGroup(of: Void.self) { loop in
                        loop.addTask { await job.body() }
                        loop.addTask { await job.stop.wait() }
                        await loop.next()
                        loop.cancelAll()
                    }
                    self.state.withLock { _ = $0.failers.removeValue(forKey: job.id) }
                }
            }
            group.cancelAll()
        }
    }

    /// Fails every open stream with `storeClosed` and accepts no more.
    func close(_ error: CoordinationError) {
        let failers = state.withLock { state in
            state.closed = true
            defer { state.failers.removeAll() }
            return Array(state.failers.values)
        }
        for fail in failers { fail(error) }
        submit.finish()
    }
}
