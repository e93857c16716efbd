import Coordination
import CoordinationCore

/// The frozen-member drill, for a backend with a cluster: a holder connected to one member does
/// guarded steps (each stamped before it asks `isLost`) while a waiter connected to another member
/// waits; the holder's member is frozen (SIGSTOP) for twice the TTL, then thawed. The session must
/// survive by moving to another member, or be reported lost in time: no step of the holder may be
/// stamped after the waiter's grant.
public enum FrozenMemberDrill {
    /// What happened, for the test's report.
    public struct Outcome: Sendable, CustomStringConvertible {
        /// Whether the waiter was granted (the holder's session ended on the server).
        public var waiterGranted: Bool
        /// Whether the holder reported the loss.
        public var holderLost: Bool
        /// Steps the holder took in all.
        public var steps: Int

        public var description: String {
            "waiter granted: \(waiterGranted), holder lost: \(holderLost), \(steps) guarded steps"
        }
    }

    /// Runs the drill on lock `name`. `holder` and `waiter` are stores connected to different
    /// members; `freeze` and `thaw` stop and continue the member `holder` is connected to.
    public static func run(
        _ name: Key, ttl: Duration, holder: any KeyValueStore, waiter: any KeyValueStore,
        freeze: @Sendable () -> Void, thaw: @Sendable () -> Void
    ) async throws -> Outcome {
        let holderSession = try await holder.makeSession(ttl: ttl)
        let grant = try await Lock(name, session: holderSession, store: holder).acquire()
        let waiterSession = try await waiter.makeSession(ttl: ttl * 10)
        let guarded = GuardedSteps(grant)
        let waiting = Task { () async throws -> (ContinuousClock.Instant, LockGrant) in
            let granted = try await Lock(name, session: waiterSession, store: waiter).acquire()
            return (.now, granted)
        }
        try await RecipeConformance.waitForLine(waiter, name, count: 2)
        freeze()
        try? await Task.sleep(for: ttl * 2)
        thaw()
        // After the thaw: either the waiter is granted (the holder's session ended), or the
        // holder's session survived and it still holds.
        // (`withDeadline` does not wait for the task it gave up on: awaiting a task's value does
        // not end when the awaiting task is cancelled.)
        let granted = try? await withDeadline(ttl * 3 + .seconds(5), "the waiter's grant") { try await waiting.value }
        await guarded.stop()
        if let (grantedAt, grant) = granted {
            try guarded.expectNone(after: grantedAt)
            try expect(guarded.sawLoss, "the holder never reported its loss")
            try await grant.release()
        } else {
            // Nobody else was granted: the holder's session survived, or the cluster had no quorum
            // to grant anyone (a loss reported then is early, never unsafe).
            waiting.cancel()
            try? await grant.release()
        }
        try? await waiterSession.close()
        try? await holderSession.close()
        return Outcome(waiterGranted: granted != nil, holderLost: guarded.sawLoss, steps: guarded.all.count)
    }
}
