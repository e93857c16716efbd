import CoordinationCore

extension ConsulStore {
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(key) { store, index throws(CoordinationError) in
            let (newIndex, entry) = try await store.readKey(key, index: index, operation: "watch")
            return (newIndex, entry.map { [$0] } ?? [])
        }
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(prefix) { store, index throws(CoordinationError) in
            try await store.readTree(prefix, index: index, operation: "watchTree")
        }
    }

    /// A first read gives the snapshot and its index; then blocking queries from that index, each
    /// answer diffed by ``BlockingView``. Transport failures are retried from the last index (which
    /// resumes without a gap) for up to `retryWindow`; then the stream fails.
    private func startWatch(
        _ key: Key,
        read: @escaping @Sendable (ConsulStore, UInt64?) async throws(CoordinationError) -> (UInt64?, [Entry])
    ) async throws(CoordinationError) -> WatchStream {
        if isClosed { throw errors.make(.storeClosed, "the store was closed", key: key) }
        let (index, entries) = try await read(self, nil)
        let first = BlockingView(index: index, entries: entries)
        let (stream, continuation) = WatchStream.makeStream()
        continuation.yield(.snapshot(first.snapshot))
        let retryWindow = configuration.requestTimeout * 2
        let stop = try watches.add(fail: { continuation.fail($0) }) { [weak self] in
            var view = first
            var failingSince: ContinuousClock.Instant?
            var backoff = Duration.milliseconds(50)
            while !Task.isCancelled, let store = self {
                do {
                    let (newIndex, fresh) = try await read(store, view.index)
                    failingSince = nil
                    backoff = .milliseconds(50)
                    for event in view.apply(index: newIndex, entries: fresh) {
                        guard continuation.yield(event) else { return }
                    }
                } catch {
                    if Task.isCancelled || error.code == .cancelled { return }
                    let retryable = [.connectionFailed, .timeout, .serverError].contains(error.code)
                    let since = failingSince ?? .now
                    failingSince = since
                    guard retryable, ContinuousClock.now - since < retryWindow else {
                        continuation.fail(error)
                        return
                    }
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(1))
                }
            }
        }
        continuation.onTermination { stop.signal() }
        return stream
    }
}
