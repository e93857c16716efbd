import BenchSupport
import Coordination
import CoordinationCore
import CoordinationZooKeeper
import Synchronization

struct ContendedFailure: Error, CustomStringConvertible {
    let description: String
}

/// `--contenders` clients, one lock, everybody acquiring and releasing as fast as it can, as
/// kazoo_bench.py's `contended`: each contender has a store of its own (its own connections and
/// ZooKeeper sessions, as each kazoo thread has its own KazooClient). After the warm-up, grants
/// are counted for the duration; the hand-off is the time from the start of one holder's
/// `release()` to the return of the next holder's `acquire()`, counted when both fall in the
/// window. The server's counters over the window give requests and watch notifications per grant.
func contended(_ options: Options, _ counters: ServerCounters) async throws {
    let name = try options.prefix.appending("contended")
    let recorder = HandoffRecorder(rule: .bothEndsInWindow)
    let failures = Failures()

    let (window, delta, perContender) = try await withStores(options.contenders, options) { stores in
        var sessions: [Session] = []
        for store in stores { sessions.append(try await store.makeSession(ttl: options.sessionTTL)) }

        let outcome = await withTaskGroup(of: Finished.self) { group in
            for (index, (store, session)) in zip(stores, sessions).enumerated() {
                let lock = Lock(name, session: session, store: store)
                group.addTask {
                    var counted = 0
                    do {
                        while !recorder.isStopping {
                            let grant = try await lock.acquire()
                            if recorder.granted() { counted += 1 }
                            recorder.releasing()
                            try await grant.release()
                        }
                    } catch {
                        if !Task.isCancelled { failures.add("contender \(index): \(error)") }
                        recorder.stop()
                    }
                    return .contender(index: index, grants: counted)
                }
            }

            try? await Task.sleep(for: options.contendedWarmup)
            let before = counters.read()
            recorder.startMeasuring()
            try? await Task.sleep(for: options.contendedDuration)
            let window = recorder.stopMeasuring()
            let after = counters.read()

            // Every contender finishes its current turn (waiters still get the lock once) and stops.
            recorder.stop()
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                return .deadline
            }
            var perContender = [Int](repeating: 0, count: options.contenders)
            var left = options.contenders
            drain: while left > 0, let next = await group.next() {
                switch next {
                case .contender(let index, let grants):
                    perContender[index] = grants
                    left -= 1
                case .deadline:
                    failures.add("contenders still running 60 s after the end of the measurement")
                    break drain
                }
            }
            group.cancelAll()
            return (window, ServerCounters.delta(before, after), perContender)
        }
        for session in sessions { try? await session.close() }
        return outcome
    }

    let problems = failures.all
    if !problems.isEmpty { throw ContendedFailure(description: problems.joined(separator: "; ")) }
    if window.grants == 0 || window.handoffs.isEmpty {
        throw ContendedFailure(description: "no grants during the measurement")
    }

    let grants = Double(window.grants)
    var figures = [
        ("contenders", "\(options.contenders)"),
        ("grants_per_s", fixed(grants / window.elapsed.seconds, 1)),
        ("handoff_p50_ms", fixed(window.handoffs.percentileMilliseconds(0.50))),
        ("handoff_p99_ms", fixed(window.handoffs.percentileMilliseconds(0.99))),
        ("grants", "\(window.grants)"),
        ("seconds", fixed(window.elapsed.seconds, 1)),
    ]
    if let delta {
        figures.append(("requests_per_grant", fixed(Double(delta.received) / grants, 2)))
        // Every request is answered by one packet; what the server sent beyond that were watch
        // notifications (give or take the requests in flight at either end of the window).
        figures.append(("notifications_per_grant", fixed(Double(delta.sent - delta.received) / grants, 2)))
    }
    result("contended", figures)
    let figure = Dictionary(uniqueKeysWithValues: figures)
    note(
        "contended (\(options.contenders) clients): \(figure["grants_per_s"]!) grants/s, "
            + "hand-off p50 \(figure["handoff_p50_ms"]!) ms, p99 \(figure["handoff_p99_ms"]!) ms, "
            + "requests/grant \(figure["requests_per_grant"] ?? "n/a"), "
            + "notifications/grant \(figure["notifications_per_grant"] ?? "n/a"), "
            + "grants per contender \(perContender.min() ?? 0)..\(perContender.max() ?? 0)")
}

/// How a child of the contended task group ended.
private enum Finished: Sendable {
    case contender(index: Int, grants: Int)
    case deadline
}

/// The contenders' failures, in the order they happened.
private final class Failures: Sendable {
    private let list = Mutex<[String]>([])

    func add(_ failure: String) { list.withLock { $0.append(failure) } }

    var all: [String] { list.withLock { $0 } }
}
