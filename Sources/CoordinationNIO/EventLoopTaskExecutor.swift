import NIOCore

/// A `TaskExecutor` that runs Swift concurrency jobs on one NIO event loop.
///
/// A backend on SwiftNIO keeps all of a store's connections on one event loop and names this
/// executor as the store's `taskExecutor`. A call made under its preference continues on the
/// loop's own thread when a reply arrives, instead of the loop waking a thread of the global
/// executor to resume it and that thread handing the next request back to the loop; on a small
/// machine each such wake-up costs more than the work it carries.
///
/// Jobs run in the loop's order with its other work, so a job must not block.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
