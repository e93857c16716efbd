import Coordination
import Synchronization

/// A holder's guarded work in the fault drills: a step every `interval`, each stamped on the
/// monotonic clock *before* the holder asks `isLost`, on the global executor (never on a store's
/// event loop), until the grant is lost. The safety contract then says that no step may be
/// stamped after another client's grant.
public final class GuardedSteps: Sendable {
    private final class Stamps: Sendable {
        let list = Mutex<[ContinuousClock.Instant]>([])
        let sawLoss = Atomic<Bool>(false)
    }

    private let stamps = Stamps()
    private let task: Task<Void, Never>

    public init(_ grant: LockGrant, every interval: Duration = .milliseconds(5)) {
        let stamps = self.stamps
        task = Task.detached {
            while !Task.isCancelled {
                let stamp = ContinuousClock.now
                if grant.isLost {
                    stamps.sawLoss.store(true, ordering: .relaxed)
                    return
                }
                stamps.list.withLock { $0.append(stamp) }
                try? await Task.sleep(for: interval)
            }
        }
    }

    deinit { task.cancel() }

    /// Every step's stamp so far.
    public var all: [ContinuousClock.Instant] { stamps.list.withLock { $0 } }

    /// Whether the holder saw its loss (rather than being stopped).
    public var sawLoss: Bool { stamps.sawLoss.load(ordering: .relaxed) }

    /// Stops the steps (the holder still holds) and waits for the last one to end.
    public func stop() async {
        task.cancel()
        await task.value
    }

    /// Waits until the holder has seen its loss (and stopped).
    public func waitUntilStopped(within deadline: Duration) async throws {
        let task = self.task
        try await withDeadline(deadline, "the holder reports the loss") { await task.value }
    }

    /// Throws unless some step was done and none was stamped at or after `grantedAt`, another
    /// client's grant.
    public func expectNone(after grantedAt: ContinuousClock.Instant) throws {
        let all = self.all
        let late = all.filter { $0 >= grantedAt }
        try expect(!all.isEmpty, "the holder did no guarded step at all")
        try expect(
            late.isEmpty,
            "the holder did \(late.count) guarded step(s) after another holder was granted (\(all.count) steps in all; "
                + "the first late one \(late.first.map { $0 - grantedAt } ?? .zero) after the grant)")
    }
}
