@_spi(Backend) import CoordinationCore
import NIOHTTP1
import Synchronization

extension ConsulStore {
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(key) { (store, index, sent) throws(CoordinationError) -> (UInt64?, [Entry]) in
            let (newIndex, entry) = try await store.readKey(key, index: index, operation: "watch", sent: sent)
            return (newIndex, entry.map { [$0] } ?? [])
        }
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(prefix) { (store, index, sent) throws(CoordinationError) -> (UInt64?, [Entry]) in
            try await store.readTree(prefix, index: index, operation: "watchTree", sent: sent)
        }
    }

    /// A first read gives the snapshot and its index; then blocking queries from that index, each
    /// answer diffed by ``BlockingView``. Transport failures are retried from the last index (which
    /// resumes without a gap) for up to `retryWindow`; then the stream fails.
    private func startWatch(
        _ key: Key,
        read:
            @escaping @Sendable (ConsulStore, UInt64?, (@Sendable () -> Void)?) async throws(CoordinationError) -> (
                UInt64?, [Entry]
            )
    ) async throws(CoordinationError) -> WatchStream {
        if isClosed { throw errors.make(.storeClosed, "the store was closed", key: key) }
        let (index, entries) = try await read(self, nil, nil)
        let first = BlockingView(index: index, entries: entries)
        let (stream, continuation) = WatchStream.makeStream()
        continuation.yield(.snapshot(first.snapshot))
        let retryWindow = configuration.requestTimeout * 2
        // Return only once the first blocking query is on the wire (or a deadline passed), so that
        // a write made right after `watch()` returns finds it waiting at the agent.
        let firstSent = WakeSignal()
        let fail: @Sendable (CoordinationError) -> Void = { continuation.fail($0) }
        let stop = try watches.add(fail: fail) { [weak self] in
            defer { firstSent.signal() }
            var sentSignal: (@Sendable () -> Void)? = { firstSent.signal() }
            var view = first
            var failingSince: ContinuousClock.Instant?
            var backoff = Duration.milliseconds(50)
            while !Task.isCancelled, let store = self {
                do throws(CoordinationError) {
                    let signal = sentSignal
                    sentSignal = nil
                    let (newIndex, fresh) = try await read(store, view.index, signal)
                    if failingSince != nil {
                        Telemetry.count(Telemetry.Metric.watchReconnects, [("backend", "consul")])
                    }
                    failingSince = nil
                    backoff = .milliseconds(50)
                    for event in view.apply(index: newIndex, entries: fresh) {
                        if case .snapshot(let snapshot) = event, snapshot.historyLost {
                            Telemetry.count(Telemetry.Metric.historyLost, [("backend", "consul")])
                        }
                        guard continuation.yield(event) else { return }
                    }
                } catch {
                    firstSent.signal()
                    if Task.isCancelled || error.code == .cancelled { return }
                    let retryable = [.connectionFailed, .timeout, .serverError].contains(error.code)
                    let since = failingSince ?? .now
                    failingSince = since
                    guard retryable, ContinuousClock.now - since < retryWindow else {
                        continuation.fail(error)
                        return
                    }
                    try? await Task.sleep(for: backoff.jittered())
                    backoff = min(backoff * 2, .seconds(1))
                }
            }
        }
        continuation.onTermination { stop.signal() }
        let deadline = configuration.requestTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await firstSent.wait() }
            group.addTask { try? await Task.sleep(for: deadline) }
            await group.next()
            group.cancelAll()
        }
        return stream
    }
}
