@_spi(Backend) import CoordinationCore

/// The long-running work a store owns — watch polls and v2 lock refreshes — run as child tasks of
/// the store's `run()`, never as unstructured tasks. Work submitted before `run()` starts waits for it.
final class V2TaskRunner: Sendable {
    typealias Job = @Sendable () async -> Void

    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation

    init() {
        (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
    }

    /// Queues `job`; `false` once the runner has finished.
    @discardableResult
    func submit(_ job: @escaping Job) -> Bool {
        if case .enqueued = continuation.yield(job) { return true }
        return false
    }

    /// Queues `job` to run until it returns or `stop` is signalled (which cancels it).
    @discardableResult
    func submit(until stop: WakeSignal, _ job: @escaping Job) -> Bool {
        submit {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await job() }
                group.addTask { await stop.wait() }
                await group.next()
                group.cancelAll()
            }
        }
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask { await job() }
            }
        }
    }

    func finish() { continuation.finish() }
}
