@_spi(Backend) import CoordinationCore

/// One watch over the v2 keys API: a snapshot, then long polls (`wait=true&waitIndex=`, recursive
/// for a subtree), each answered with exactly one event, resuming from the index after the last
/// event seen. When etcd has dropped that index from its event window (error 401, "event index
/// cleared") the watch re-reads the state and delivers it as a snapshot marked `historyLost`.
struct V2Watch: Sendable {
    let connection: V2Connection
    let keySpace: V2KeySpace
    let errors: V2ErrorMapper
    /// The key watched, or the prefix whose subtree is watched.
    let key: Key
    let recursive: Bool
    let requestTimeout: Duration
    /// How long one long poll may wait before it is sent again from the same index.
    let pollTimeout: Duration
    /// How long the watch keeps trying to reach etcd before it fails.
    let reconnectLimit: Duration

    private var operation: String { recursive ? "watchTree" : "watch" }

    /// The current state and the index changes are to be read after.
    func snapshot() async throws(CoordinationError) -> (entries: [Entry], index: UInt64) {
        var query: [(String, String)] = []
        if recursive { query = [("recursive", "true"), ("sorted", "true")] }
        let reply = try await connection.send(
            .get, keySpace.path(key), query: query, timeout: requestTimeout, operation: operation, key: key)
        switch reply {
        case .success(let response, let index):
            let node = response.node
            if recursive {
                guard node.isDirectory else {
                    throw errors.make(
                        .notADirectory,
                        "watchTree needs a directory, but '\(key)' is a key with a value (etcd v2 rule)", key: key)
                }
                let entries = node.leaves.compactMap { entry(for: $0) }.sorted { $0.key < $1.key }
                return (entries, index)
            }
            guard !node.isDirectory else {
                throw errors.make(
                    .isADirectory, "watch(key) was given a directory; watch a directory with watchTree", key: key)
            }
            return (entry(for: node).map { [$0] } ?? [], index)
        case .failure(let body) where body.errorCode == V2ErrorCode.keyNotFound:
            return ([], body.index ?? 0)
        case .failure(let body):
            throw errors.etcd(body, operation, key: key)
        }
    }

    /// Polls for changes after `index` and delivers them until the consumer stops, the task is
    /// cancelled, or etcd cannot be reached for longer than ``reconnectLimit`` (the watch then fails).
    func follow(from index: UInt64, known entries: [Entry], into continuation: WatchStream.Continuation) async {
        var waitIndex = index + 1
        var known = Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0) })
        var failingSince: ContinuousClock.Instant?
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            do {
                var query = [("wait", "true"), ("waitIndex", String(waitIndex))]
                if recursive { query.append(("recursive", "true")) }
                let reply = try await connection.send(
                    .get, keySpace.path(key), query: query, timeout: pollTimeout, operation: operation, key: key)
                if failingSince != nil {
                    Telemetry.count(Telemetry.Metric.watchReconnects, [("backend", "etcdv2")])
                }
                failingSince = nil
                backoff = .milliseconds(50)
                switch reply {
                case .success(let response, _):
                    waitIndex = response.node.modifiedIndex + 1
                    for event in translate(response, known: &known) {
                        guard continuation.yield(event) else { return }
                    }
                case .failure(let body) where body.errorCode == V2ErrorCode.eventIndexCleared:
                    let fresh = try await snapshot()
                    known = Dictionary(uniqueKeysWithValues: fresh.entries.map { ($0.key, $0) })
                    waitIndex = fresh.index + 1
                    let lost = WatchSnapshot(entries: fresh.entries, revision: Revision(fresh.index), historyLost: true)
                    Telemetry.count(Telemetry.Metric.historyLost, [("backend", "etcdv2")])
                    guard continuation.yield(.snapshot(lost)) else { return }
                case .failure(let body):
                    continuation.fail(errors.etcd(body, operation, key: key))
                    return
                }
            } catch {
                if Task.isCancelled || error.code == .cancelled { return }
                if error.code == .timeout { continue }  // a quiet poll: ask again from the same index
                if error.code != .connectionFailed {
                    continuation.fail(error)
                    return
                }
                let now = ContinuousClock.now
                let since = failingSince ?? now
                failingSince = since
                if now - since > reconnectLimit {
                    continuation.fail(error)
                    return
                }
                try? await Task.sleep(for: backoff.jittered())
                backoff = min(backoff * 2, .seconds(1))
            }
        }
    }

    private func entry(for node: V2Node) -> Entry? {
        V2EventTranslator(keySpace: keySpace, key: key, recursive: recursive).entry(for: node)
    }

    func translate(_ response: V2Response, known: inout [Key: Entry]) -> [WatchEvent] {
        V2EventTranslator(keySpace: keySpace, key: key, recursive: recursive).translate(response, known: &known)
    }
}

/// Turns v2 watch answers into ``WatchEvent``s for one watched key or subtree (pure).
struct V2EventTranslator: Sendable {
    let keySpace: V2KeySpace
    let key: Key
    let recursive: Bool

    func entry(for node: V2Node) -> Entry? {
        guard !node.isDirectory, let key = keySpace.key(node.key) else { return nil }
        return EtcdV2Entries.entry(node, key: key)
    }

    private func inScope(_ candidate: Key) -> Bool {
        recursive ? candidate.relative(to: key) != nil && candidate != key : candidate == key
    }

    /// The events one v2 answer stands for. A removed directory stands for every key we know below it.
    func translate(_ response: V2Response, known: inout [Key: Entry]) -> [WatchEvent] {
        let node = response.node
        let revision = Revision(node.modifiedIndex)
        switch response.action {
        case "set", "create", "update", "compareAndSwap":
            guard let entry = entry(for: node), inScope(entry.key) else { return [] }
            known[entry.key] = entry
            return [.put(entry)]
        case "delete", "compareAndDelete", "expire":
            let reason: Deletion.Reason = response.action == "expire" ? .expired : .deleted
            let removed: [Key]
            if let nodeKey = keySpace.key(node.key) {
                if node.isDirectory {
                    removed = known.keys.filter { $0 == nodeKey || $0.relative(to: nodeKey) != nil }.sorted()
                } else {
                    removed = inScope(nodeKey) ? [nodeKey] : []
                }
            } else {
                removed = known.keys.sorted()  // the namespace itself went
            }
            for gone in removed { known.removeValue(forKey: gone) }
            return removed.map { .deleted(Deletion(key: $0, revision: revision, reason: reason)) }
        default:
            return []  // "get" and anything new: not a change
        }
    }
}

/// Builds entries from v2 nodes.
enum EtcdV2Entries {
    static func entry(_ node: V2Node, key: Key) -> Entry {
        let (value, session) = V2ValueCodec.decode(node.value ?? "")
        return Entry(
            key: key,
            value: value,
            createRevision: Revision(node.createdIndex),
            modifyRevision: Revision(node.modifiedIndex),
            session: session.map(SessionID.init)
        )
    }
}
