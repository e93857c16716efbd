import CoordinationCore
import CoordinationMemory
import Synchronization

/// Many watches on one key, each drained by its own task, and a put that all of them must see.
///
/// ``putAndAwaitDelivery()`` is one round: it writes the key and returns once every watcher's task
/// has received that `.put` event from its stream.
public final class WatchFanOut: Sendable {
    public let store: MemoryStore
    public let key: Key
    public let watchers: Int
    private let delivered = Countdown()
    private let consumers = Mutex<Task<Void, Never>?>(nil)

    public init(store: MemoryStore, key: Key, watchers: Int) {
        self.store = store
        self.key = key
        self.watchers = watchers
    }

    /// Opens the watches and starts one task per watch. Returns once every watch is registered
    /// with the store (each has its snapshot queued), so the next put reaches all of them.
    public func start() async throws {
        var streams: [WatchStream] = []
        streams.reserveCapacity(watchers)
        for _ in 0..<watchers {
            streams.append(try await store.watch(key))
        }
        let delivered = self.delivered
        // The consumers must outlive this call (package-benchmark measures rounds from separate
        // closure calls), so they run in one task that ``stop()`` cancels and awaits.
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for stream in streams {
                    group.addTask {
                        do {
                            for try await event in stream {
                                if case .put = event { delivered.arrive() }
                            }
                        } catch {
                            // The store was closed: the round is over.
                        }
                    }
                }
            }
        }
        consumers.withLock { $0 = task }
    }

    /// Writes the key once and waits until every watcher has received the write.
    public func putAndAwaitDelivery() async throws {
        delivered.arm(watchers)
        try await store.put(key, Workload.value)
        await delivered.wait()
    }

    /// Cancels the watchers' tasks and waits for them to end.
    public func stop() async {
        let task = consumers.withLock { consumers in
            defer { consumers = nil }
            return consumers
        }
        task?.cancel()
        await task?.value
    }
}
