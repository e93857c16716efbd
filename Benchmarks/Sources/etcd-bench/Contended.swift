import BenchSupport
import Coordination
import CoordinationCore
import CoordinationEtcd

struct LockStalled: Error, CustomStringConvertible {
    let description: String
}

/// `contenders` clients, each with its own store and session, loop acquire/release on one lock
/// for a fixed time; a warm-up first. Figures: grants per second in the window and the handoff
/// latency (one holder's release to the next grant).
func contended(_ options: Options) async throws -> [String] {
    let name = try Key("\(options.prefix)/lock-contended")
    let recorder = HandoffRecorder(rule: .grantInWindow)
    let metrics = ServerMetrics(host: options.endpoint.host, port: options.endpoint.port)
    return try await withStores(options.contenders, options) { stores in
        var sessions: [Session] = []
        for store in stores { sessions.append(try await store.makeSession(ttl: options.sessionTTL)) }
        var serverBefore: [String: Double] = [:]
        var serverAfter: [String: Double] = [:]
        let result: (LatencySamples, Int, Duration) = try await withThrowingTaskGroup(of: Void.self) { group in
            for (store, session) in zip(stores, sessions) {
                let lock = Lock(name, session: session, store: store)
                group.addTask {
                    while true {
                        let grant = try await lock.acquire()
                        recorder.granted()
                        let done = recorder.isStopping
                        recorder.releasing()
                        try await grant.release()
                        if done { return }
                    }
                }
            }
            try await Task.sleep(for: options.contendedWarmup)
            serverBefore = try metrics.unaryCounts()
            recorder.startMeasuring()
            try await Task.sleep(for: options.contendedDuration)
            let window = recorder.stopMeasuring()
            serverAfter = try metrics.unaryCounts()
            recorder.stop()

            // Drain; a lock that stops granting is reported with the line as it stands.
            let grantsAtStop = recorder.totalGrants
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                throw LockStalled(description: "")
            }
            var finished = 0
            do {
                while finished < options.contenders, try await group.next() != nil { finished += 1 }
            } catch is LockStalled {
                let line = try await stores[0].line.contenders(in: name)
                let described = line.map { "\($0.key.name)@\($0.order)" }.joined(separator: " ")
                throw LockStalled(
                    description: """
                        the lock stopped granting: \(finished) of \(options.contenders) contenders left, \
                        \(recorder.totalGrants - grantsAtStop) grants after the window \
                        (\(window.grants) in it); line by create revision: \(described)
                        """)
            }
            group.cancelAll()
            return window
        }
        for session in sessions { try? await session.close() }
        let (handoffs, grants, elapsed) = result
        func perGrant(_ method: String) -> Double {
            (serverAfter[method, default: 0] - serverBefore[method, default: 0]) / Double(max(grants, 1))
        }
        let total = serverAfter.keys.reduce(0) { $0 + perGrant($1) }
        return [
            "swift contended contenders=\(options.contenders) grants_per_s=\(fixed(Double(grants) / elapsed.seconds, 1))"
                + " handoff_p50_ms=\(fixed(handoffs.percentileMilliseconds(0.5)))"
                + " handoff_p99_ms=\(fixed(handoffs.percentileMilliseconds(0.99))) grants=\(grants)"
                + " handoff_p90_ms=\(fixed(handoffs.percentileMilliseconds(0.9)))"
                + " handoff_p95_ms=\(fixed(handoffs.percentileMilliseconds(0.95)))"
                + " handoff_p999_ms=\(fixed(handoffs.percentileMilliseconds(0.999))) handoff_max_ms=\(fixed(handoffs.percentileMilliseconds(1.0)))"
                + " seconds=\(fixed(elapsed.seconds, 1))",
            "swift contended_rpcs per_grant=\(fixed(total)) Txn=\(fixed(perGrant("Txn")))"
                + " DeleteRange=\(fixed(perGrant("DeleteRange"))) Range=\(fixed(perGrant("Range")))",
        ]
    }
}
