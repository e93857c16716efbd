@_spi(Backend) import CoordinationCore
import Synchronization

/// Watches: ZooKeeper's persistent watches (addWatch, 3.6+) for `watch` and `watchTree`, and a
/// one-shot `exists` watch for a waiter's predecessor.
///
/// A notification names a path and what happened, not the new data: each one is followed by a read,
/// so back-to-back writes may show as one change (the latest). Revisions are zxids; a deletion
/// carries the zxid of the reply that found the znode gone.
extension ZooKeeperStore {
    public func watch(_ key: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(root: key, tree: false)
    }

    public func watchTree(_ prefix: Key) async throws(CoordinationError) -> WatchStream {
        try await startWatch(root: prefix, tree: true)
    }

    /// Registers the watch and sends the first snapshot before returning, so that nothing written
    /// after this call returns is missed.
    ///
    /// The loop runs on the store's event loop: a notification resumes it there, ahead of whatever
    /// the reply arriving behind the notification wakes, so its read is sent before a write that
    /// the writer makes once its own reply is in (ZooKeeper answers one session's requests in
    /// order). On the global executor the two raced, and a create followed at once by a delete
    /// could be read as nothing at all.
    private func startWatch(root: Key, tree: Bool) async throws(CoordinationError) -> WatchStream {
        let (stream, continuation) = WatchStream.makeStream()
        var watcher = try Watcher(store: self, root: root, tree: tree, continuation: continuation)
        try await watcher.attach(historyLost: false)
        let task = Task(executorPreference: executor) { [watcher] in
            var watcher = watcher
            await watcher.run()
        }
        continuation.onTermination { task.cancel() }
        return stream
    }

    /// One watch: the keys it knows (to tell news from echoes and to name deletions), its
    /// listener on the store's session, and the loop that turns notifications into events.
    struct Watcher: Sendable {
        let store: ZooKeeperStore
        let root: Key
        let tree: Bool
        let continuation: WatchStream.Continuation
        var known: [Key: Entry] = [:]
        var client: ZooKeeperClient?
        var listener: (id: Int, events: AsyncStream<ZooKeeperClient.Event>)?

        init(store: ZooKeeperStore, root: Key, tree: Bool, continuation: WatchStream.Continuation)
            throws(CoordinationError)
        {
            self.store = store
            self.path = try store.paths.path(root)
            self.root = root
            self.tree = tree
            self.continuation = continuation
        }

        let path: String

        /// Listens on the store's current session, registers the persistent watch and sends a
        /// snapshot (marked `historyLost` after the session was replaced).
        mutating func attach(historyLost: Bool) async throws(CoordinationError) {
            let client = try await store.primary()
            let listener = store.listen(client, path: path, recursive: tree)
            self.client = client
            self.listener = listener
            do {
                try await client.addPersistentWatch(path, mode: tree ? .persistentRecursive : .persistent)
            } catch {
                store.stopListening(listener.id)
                self.listener = nil
                throw store.failure(error, tree ? "watchTree" : "watch", key: root)
            }
            let (entries, zxid) = try await read(client)
            known = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
            continuation.yield(
                .snapshot(
                    WatchSnapshot(
                        entries: entries.sorted { $0.key < $1.key }, revision: Revision(UInt64(max(0, zxid))),
                        historyLost: historyLost)))
        }

        private func read(_ client: ZooKeeperClient) async throws(CoordinationError) -> ([Entry], Int64) {
            if tree {
                let (entries, zxid, _) = try await store.subtree(root, client)
                return (entries, zxid)
            }
            do {
                let reply = try await client.send(.getData(path: path, watch: false))
                guard case .data(let data, let stat) = reply.response, let data else { return ([], reply.zxid) }
                return ([store.entry(root, data, stat)], reply.zxid)
            } catch  where error.zooKeeperCode == .noNode {
                return ([], error.zooKeeperZxid ?? 0)
            } catch {
                throw store.failure(error, "watch", key: root)
            }
        }

        mutating func run() async {
            while !Task.isCancelled {
                guard let listener, let client else { break }
                var sessionEnded = false
                do {
                    for await event in listener.events {
                        switch event {
                        case .notification(let notification):
                            try await apply(notification, client)
                        case .resumed:
                            // The connection moved (or came back): the watch resumes by reading again.
                            Telemetry.count(Telemetry.Metric.watchReconnects, [("backend", "zookeeper")])
                            try await resync(client)
                        case .state(let state):
                            if state.isTerminal { sessionEnded = true }
                        }
                        if sessionEnded || Task.isCancelled { break }
                    }
                } catch {
                    detach()
                    continuation.fail(error)
                    return
                }
                detach()
                if Task.isCancelled { return }
                if !sessionEnded {
                    // The store closed.
                    continuation.fail(store.closedError())
                    return
                }
                // The store's session expired: watch again on a new one, saying history was lost.
                do {
                    Telemetry.count(Telemetry.Metric.historyLost, [("backend", "zookeeper")])
                    try await attach(historyLost: true)
                } catch {
                    continuation.fail(error)
                    return
                }
            }
            detach()
        }

        private mutating func detach() {
            guard let listener, let client else { return }
            store.stopListening(listener.id)
            self.listener = nil
            self.client = nil
            let path = self.path
            Task { await client.releasePersistentWatch(path) }
        }

        /// Reads what a notification points at and reports it if it is news.
        private mutating func apply(_ notification: WatcherEvent, _ client: ZooKeeperClient)
            async throws(CoordinationError)
        {
            switch notification.type {
            case .nodeCreated, .nodeDeleted, .nodeDataChanged: break
            default: return
            }
            guard let key = store.paths.key(notification.path) else { return }
            if tree ? !key.isDescendant(of: root) : key != root { return }
            do {
                let reply = try await client.send(.getData(path: notification.path, watch: false))
                guard case .data(let data, let stat) = reply.response else { return }
                if let data {
                    if let old = known[key], old.modifyRevision.value >= UInt64(stat.mzxid) { return }
                    let entry = store.entry(key, data, stat)
                    known[key] = entry
                    continuation.yield(.put(entry))
                } else if known.removeValue(forKey: key) != nil {
                    // The key was deleted but keys remain below it: a parent only now.
                    continuation.yield(
                        .deleted(Deletion(key: key, revision: Revision(UInt64(reply.zxid)), reason: .deleted)))
                }
            } catch  where error.zooKeeperCode == .noNode {
                guard let old = known.removeValue(forKey: key) else { return }
                continuation.yield(.deleted(deletion(of: old, zxid: error.zooKeeperZxid ?? 0)))
            }
        }

        /// After the session moved to another server: read everything again and report the
        /// differences (a persistent watch does not replay what changed in between).
        private mutating func resync(_ client: ZooKeeperClient) async throws(CoordinationError) {
            let (entries, zxid) = try await read(client)
            let fresh = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
            for old in known.values.sorted(by: { $0.key < $1.key }) where fresh[old.key] == nil {
                continuation.yield(.deleted(deletion(of: old, zxid: zxid)))
            }
            for entry in entries.sorted(by: { $0.modifyRevision < $1.modifyRevision })
            where known[entry.key]?.modifyRevision != entry.modifyRevision {
                continuation.yield(.put(entry))
            }
            known = fresh
        }

        /// An ephemeral key may have gone with its session or been deleted: ZooKeeper does not say.
        private func deletion(of old: Entry, zxid: Int64) -> Deletion {
            Deletion(
                key: old.key, revision: Revision(UInt64(max(zxid, 0))),
                reason: old.session == nil ? .deleted : .unspecified)
        }
    }

    // MARK: - Waiting for a znode to go

    /// One `getData` with a watch, then the server's notification: a waiter costs one request.
    ///
    /// The store's own session may be connected to a member that is behind the one the waiter
    /// read its line from, and would then say "no such node" about a predecessor it has not seen
    /// created yet. So "no such node" is believed only after a `sync` of the parent (the member
    /// catches up with the leader first); without it the waiter would read its line again, find
    /// the predecessor still there, and ask the lagging member again, round after round.
    public func waitUntilGone(_ key: Key, createdAt createRevision: Revision?, session: SessionID?)
        async throws(CoordinationError)
    {
        let path = try paths.path(key)
        var synced = false
        while true {
            if Task.isCancelled { throw make(.cancelled, "stopped waiting for '\(key)' to be removed", key: key) }
            let client = try await primary()
            let (id, events) = listen(client, path: path, recursive: false)
            defer { stopListening(id) }
            do {
                let reply = try await client.send(.getData(path: path, watch: true))
                guard case .data(let data, let stat) = reply.response, data != nil else { return }
                if let session, ZooKeeperPaths.owner(stat.ephemeralOwner) != session { return }
                if let createRevision, UInt64(stat.czxid) != createRevision.value { return }
            } catch  where error.zooKeeperCode == .noNode {
                if synced { return }
                synced = true
                try await catchUp(client, below: key)
                continue
            } catch {
                throw failure(error, "waitUntilGone", key: key)
            }
            for await event in events {
                if case .notification(let notification) = event, notification.type == .nodeDeleted { return }
                // Any other change, a resumption or a new session: look again.
                break
            }
        }
    }

    /// Makes `client`'s member catch up with the leader (a `sync` of `key`'s parent) before its
    /// next read.
    private func catchUp(_ client: ZooKeeperClient, below key: Key) async throws(CoordinationError) {
        guard let parent = key.parent else { return }
        do {
            _ = try await client.send(.sync(path: try paths.path(parent)))
        } catch  where error.zooKeeperCode == .noNode {
            // The parent is gone too: nothing to catch up on.
        } catch {
            throw failure(error, "waitUntilGone", key: key)
        }
    }

    /// Waits until `path` does not exist or `deadline` passes; `true` if it is gone.
    func waitForRemoval(_ path: String, client: ZooKeeperClient, until deadline: ContinuousClock.Instant)
        async throws(CoordinationError) -> Bool
    {
        let (id, events) = listen(client, path: path, recursive: false)
        defer { stopListening(id) }
        do {
            _ = try await client.send(.exists(path: path, watch: true))
        } catch  where error.zooKeeperCode == .noNode {
            return true
        } catch {
            throw failure(error, "waitForRemoval", key: nil)
        }
        let timer = Task {
            try? await Task.sleep(until: deadline)
            stopListening(id)
        }
        defer { timer.cancel() }
        for await event in events {
            if case .notification(let notification) = event, notification.type == .nodeDeleted { return true }
            return false
        }
        return false
    }
}
