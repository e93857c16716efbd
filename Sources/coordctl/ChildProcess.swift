import Foundation
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The command `coordctl lock` runs: started with extra environment, found on `PATH`, its
/// standard streams shared with coordctl's. Only this process is ever signalled, by its PID.
final class ChildProcess: Sendable {
    private struct State {
        var status: Int32?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
    }

    private let pid = Atomic<Int32>(0)
    private let state = Mutex(State())

    init(_ command: [String], environment extra: [String: String]) throws {
        let process = Process()
        // `env` finds the command on PATH, as a shell would.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        process.terminationHandler = { [self] finished in
            // A command killed by a signal exits as a shell reports it: 128 + the signal.
            let status =
                finished.terminationReason == .uncaughtSignal
                ? 128 + finished.terminationStatus : finished.terminationStatus
            let waiters = state.withLock { state in
                state.status = status
                defer { state.waiters.removeAll() }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        try process.run()
        pid.store(process.processIdentifier, ordering: .releasing)
    }

    /// Waits for the command to exit, cancelled or not; its status.
    func exitStatus() async -> Int32 {
        let id = newWaiterID()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            register(continuation, id: id, unlessCancelled: false)
        } ?? -1
    }

    /// Waits for the command to exit; its status, or `nil` if the waiting task is cancelled first.
    func exitStatusUnlessCancelled() async -> Int32? {
        let id = newWaiterID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                register(continuation, id: id, unlessCancelled: true)
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    private func newWaiterID() -> Int {
        state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
    }

    /// Resumes `continuation` with the status once there is one (at once if there is).
    private func register(_ continuation: CheckedContinuation<Int32?, Never>, id: Int, unlessCancelled: Bool) {
        let now: Int32?? = state.withLock { state in
            if let status = state.status { return .some(status) }
            if unlessCancelled, Task.isCancelled { return .some(nil) }
            state.waiters[id] = continuation
            return nil
        }
        if let now { continuation.resume(returning: now) }
    }

    var hasExited: Bool { state.withLock { $0.status != nil } }

    func signal(_ number: Int32) {
        if !hasExited { _ = kill(pid.load(ordering: .acquiring), number) }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns once it has exited.
    func stop(killAfter grace: Duration) async {
        signal(SIGTERM)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                guard (try? await Task.sleep(for: grace)) != nil else { return }
                self.signal(SIGKILL)
            }
            _ = await exitStatus()
            group.cancelAll()
        }
    }
}
