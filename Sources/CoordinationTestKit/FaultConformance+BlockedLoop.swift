import Coordination
import CoordinationCore
import CoordinationNIO
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension FaultConformance {
    /// The deterministic variant of the pause drill, for backends whose stores run on an event loop
    /// of their own (etcd, ZooKeeper): the holder's store's event loop is blocked for twice the
    /// TTL, so no keep-alive goes out or is answered and none of the store's timers runs, while the
    /// holder's guarded work goes on on the global executor. Every step is stamped before the holder
    /// asks `isLost`; no step may be stamped after the waiter (a store on another loop) is granted.
    public static let blockedLoopChecks: [ConformanceCheck] = [blockedLoopHolder]

    static let blockedLoopHolder = check(
        "lock: a holder whose store's event loop is blocked past its TTL reports the loss before any further guarded step",
        clients: 3
    ) { ctx in
        let loops = ctx.clients.map { ($0.taskExecutor as? EventLoopTaskExecutor)?.eventLoop }
        guard loops.allSatisfy({ $0 != nil }) else {
            throw ConformanceFailure("the blocked-loop drill needs stores that run on an event loop of their own")
        }
        var pair: (holder: Int, waiter: Int)?
        for holder in loops.indices {
            for waiter in loops.indices where waiter != holder && loops[holder]! !== loops[waiter]! {
                pair = pair ?? (holder, waiter)
            }
        }
        guard let pair, let loop = loops[pair.holder] else {
            throw ConformanceFailure("all clients share one event loop; the drill needs two")
        }
        let holderStore = ctx.clients[pair.holder]
        let waiterStore = ctx.clients[pair.waiter]
        let name = try ctx.key("blocked")
        let ttl = ctx.sessionTTL

        let holderSession = try await holderStore.makeSession(ttl: ttl)
        let grant = try await Lock(name, session: holderSession, store: holderStore).acquire()
        // The guarded work runs on the global executor, not on the loop about to be blocked.
        let guarded = GuardedSteps(grant)
        let waiterSession = try await waiterStore.makeSession(ttl: ttl * 10)
        let waiter = Task { () async throws -> (ContinuousClock.Instant, LockGrant) in
            let granted = try await Lock(name, session: waiterSession, store: waiterStore).acquire()
            return (.now, granted)
        }
        try await waitForLine(waiterStore, name, count: 2)

        let blockFor = ttl * 2
        loop.execute {
            // Deliberately blocking: this is the fault.
            let until = ContinuousClock.now + blockFor
            while ContinuousClock.now < until { usleep(10_000) }
        }
        let granted = try await withDeadline(
            ttl * 3 + .seconds(15), "the waiter's grant while the holder's loop is blocked"
        ) {
            try await waiter.value
        }
        try await guarded.waitUntilStopped(within: blockFor + .seconds(15))
        try guarded.expectNone(after: granted.0)
        try await granted.1.release()
        try await waiterSession.close()
        try? await holderSession.close()
    }
}
