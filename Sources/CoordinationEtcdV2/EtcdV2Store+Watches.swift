import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

// Watches: `wait=true` long polls from the last index seen (V2Watch).
extension EtcdV2Store {
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(key, recursive: false)
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(prefix, recursive: true)
    }

    func startWatch(_ key: Key, recursive: Bool) async throws(CoordinationError) -> WatchStream {
        try checkOpen(key)
        let watch = V2Watch(
            connection: connection, keySpace: keySpace, errors: errors, key: key, recursive: recursive,
            requestTimeout: configuration.requestTimeout, pollTimeout: configuration.watchPollTimeout,
            reconnectLimit: configuration.watchReconnectLimit)
        let start = try await watch.snapshot()
        let (stream, continuation) = WatchStream.makeStream()
        let id = nextWatchID.wrappingAdd(1, ordering: .relaxed).newValue
        let stop = WakeSignal()
        watches.withLock { $0[id] = (continuation, stop) }
        continuation.onTermination { [weak self] in
            stop.signal()
            self?.watches.withLock { _ = $0.removeValue(forKey: id) }
        }
        continuation.yield(.snapshot(WatchSnapshot(entries: start.entries, revision: Revision(start.index))))
        let submitted = runner.submit(until: stop) {
            await watch.follow(from: start.index, known: start.entries, into: continuation)
        }
        if !submitted || closed.load(ordering: .acquiring) {
            continuation.fail(errors.make(.storeClosed, "the store was closed", key: key))
        }
        return stream
    }
}
