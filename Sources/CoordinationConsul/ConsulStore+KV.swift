@_spi(Backend) import CoordinationCore
import NIOHTTP1
import Synchronization

extension ConsulStore {
    /// A single key and the index it was read at (`nil` entry: absent).
    func readKey(
        _ key: Key, index: UInt64? = nil, operation: String, sent: (@Sendable () -> Void)? = nil
    ) async throws(CoordinationError) -> (index: UInt64?, entry: Entry?) {
        let query: [(String, String?)] =
            index.map { [("index", String($0)), ("wait", configuration.blockingWait.consulText)] } ?? []
        let response = try await get(
            kvPath(key), query: query, blocking: index != nil, operation: operation, key: key, sent: sent)
        switch response.status {
        case 200:
            guard let pairs = ConsulWire.decode([ConsulWire.KVPair].self, response.body) else {
                throw errors.make(.protocolError, "\(operation): unreadable KV answer", key: key)
            }
            let consulKey = keySpace.consulKey(key)
            return (response.index, pairs.first { $0.Key == consulKey }.flatMap(keySpace.entry))
        case 404:
            return (response.index, nil)
        default:
            throw errors.status(response, operation, key: key)
        }
    }

    /// Every entry strictly below `prefix` (the trailing `/` keeps `prefixfoo` out).
    func readTree(
        _ prefix: Key, index: UInt64? = nil, operation: String, sent: (@Sendable () -> Void)? = nil
    ) async throws(CoordinationError) -> (index: UInt64?, entries: [Entry]) {
        var query: [(String, String?)] = [("recurse", nil)]
        if let index { query += [("index", String(index)), ("wait", configuration.blockingWait.consulText)] }
        let response = try await get(
            treePath(prefix), query: query, blocking: index != nil, operation: operation, key: prefix, sent: sent)
        switch response.status {
        case 200:
            guard let pairs = ConsulWire.decode([ConsulWire.KVPair].self, response.body) else {
                throw errors.make(.protocolError, "\(operation): unreadable KV answer", key: prefix)
            }
            let entries = pairs.compactMap(keySpace.entry).filter { $0.key.isDescendant(of: prefix) }
            return (response.index, entries.sorted { $0.key < $1.key })
        case 404:
            return (response.index, [])
        default:
            throw errors.status(response, operation, key: prefix)
        }
    }

    /// A read; blocking queries get the longer deadline, and `sent` (if any) hears when the request
    /// is on the wire.
    private func get(
        _ path: String, query: [(String, String?)], blocking: Bool, operation: String, key: Key,
        sent: (@Sendable () -> Void)?
    ) async throws(CoordinationError) -> ConsulResponse {
        let timeout = blocking ? blockingTimeout : configuration.requestTimeout
        guard let sent else {
            // Reads are idempotent: while the servers elect a leader (or a follower's connection to
            // a dead leader breaks), retry them within the call's own deadline.
            let deadline = ContinuousClock.now + timeout
            while true {
                let response = try await send(
                    .GET, path, query: query, timeout: timeout, operation: operation, key: key)
                guard response.status == 500, Self.isTransientServerFailure(response.text),
                    ContinuousClock.now + .milliseconds(100) < deadline
                else { return response }
                do {
                    try await Task.sleep(for: Duration.milliseconds(100).jittered())
                } catch {
                    throw errors.make(.cancelled, "\(operation) was cancelled", key: key)
                }
            }
        }
        if isClosed { throw errors.make(.storeClosed, "\(operation): the store was closed", key: key) }
        return try await http.get(path, query: query, timeout: timeout, operation: operation, key: key, sent: sent)
    }

    /// Consul's answers while it has no leader or lost its connection to it.
    static func isTransientServerFailure(_ text: String) -> Bool {
        text.contains("No cluster leader") || text.contains("rpc error") || text.contains("leadership lost")
    }

    /// A blocking query waits `blockingWait` plus Consul's jitter of up to wait/16; the deadline
    /// leaves the ordinary request timeout on top.
    var blockingTimeout: Duration {
        configuration.blockingWait + configuration.blockingWait / 16 + configuration.requestTimeout
    }

    public func get(_ key: Key) async throws(CoordinationError) -> Entry? {
        try await readKey(key, operation: "get").entry
    }

    public func exists(_ key: Key) async throws(CoordinationError) -> Bool {
        try await readKey(key, operation: "exists").entry != nil
    }

    public func put(_ key: Key, _ value: [UInt8], options: PutOptions) async throws(CoordinationError) {
        try validate(value: value, for: key)
        if let sessionID = try activeSessionID(options.session, key: key) {
            // Bound: acquire with the session (behaviour delete removes the key with it).
            let outcome = try await txn(
                [.kv("lock", keySpace.consulKey(key), value: value, session: sessionID)], operation: "put", key: key)
            if case .rolledBack = outcome { throw sessionFailure(outcome, session: options.session, key: key) }
            return
        }
        let response = try await send(.PUT, kvPath(key), body: value, operation: "put", key: key)
        guard response.isSuccess, response.text.contains("true") else {
            throw response.isSuccess
                ? errors.make(.serverError, "put: Consul did not store the value", key: key)
                : errors.status(response, "put", key: key)
        }
    }

    public func delete(_ key: Key) async throws(CoordinationError) {
        let response = try await send(.DELETE, kvPath(key), operation: "delete", key: key)
        guard response.isSuccess else { throw errors.status(response, "delete", key: key) }
    }

    public func list(_ prefix: Key) async throws(CoordinationError) -> [Entry] {
        try await readTree(prefix, operation: "list").entries
    }

    public func deleteTree(_ prefix: Key) async throws(CoordinationError) {
        // The subtree and the key itself in one transaction (a bare `?recurse` on the prefix would
        // also remove `prefixfoo`).
        let outcome = try await txn(
            [
                .kv("delete-tree", keySpace.consulKey(prefix) + "/"),
                .kv("delete", keySpace.consulKey(prefix)),
            ], operation: "deleteTree", key: prefix)
        if case .rolledBack = outcome {
            throw errors.make(.serverError, "deleteTree failed: \(outcome.failureText)", key: prefix)
        }
    }

    public func atomicPut(
        _ key: Key,
        _ value: [UInt8],
        condition: PutCondition,
        options: PutOptions
    ) async throws(CoordinationError) -> Entry {
        try validate(value: value, for: key)
        let sessionID = try activeSessionID(options.session, key: key)
        let consulKey = keySpace.consulKey(key)
        var operations: [ConsulWire.TxnOperation]
        switch (condition, sessionID) {
        case (.absent, nil):
            operations = [.kv("cas", consulKey, value: value, index: 0)]
        case (.revision(let revision), nil):
            operations = [.kv("cas", consulKey, value: value, index: revision.value)]
        case (.absent, let session?):
            // One KV request cannot both `cas` and `acquire`: a transaction does.
            operations = [.kv("check-not-exists", consulKey), .kv("lock", consulKey, value: value, session: session)]
        case (.revision(let revision), let session?):
            operations = [
                .kv("check-index", consulKey, index: revision.value),
                .kv("lock", consulKey, value: value, session: session),
            ]
        }
        let outcome = try await txn(operations, operation: "atomicPut", key: key)
        switch outcome {
        case .committed(let pairs):
            return try written(pairs, key: key, value: value)
        case .rolledBack:
            if sessionID != nil, outcome.failedAt(1) {
                throw sessionFailure(outcome, session: options.session, key: key)
            }
            switch condition {
            case .absent:
                throw errors.make(.keyExists, "create failed: the key already exists", key: key)
            case .revision(let expected):
                throw try await conditionFailure("compare-and-set", key: key, expected: expected)
            }
        }
    }

    public func atomicDelete(_ key: Key, revision: Revision) async throws(CoordinationError) {
        let consulKey = keySpace.consulKey(key)
        if let held = heldLockKey(for: key) {
            let (prefix, session) = held
            // A lock or leader contender of ours: leave the line and free `api.Lock`'s key in one step.
            let lockKey = keySpace.consulKey(ConsulLineLayout.lockKey(under: prefix))
            let outcome = try await txn(
                [
                    .kv("check-index", consulKey, index: revision.value),
                    .kv("delete", consulKey),
                    .kv("check-session", lockKey, session: session.rawValue),
                    .kv("delete", lockKey),
                ], operation: "atomicDelete", key: key)
            if case .committed = outcome {
                forgetExclusive(prefix: prefix, session: session)
                return
            }
            if outcome.failedAt(0) {
                let failure = try await conditionFailure("compare-and-delete", key: key, expected: revision)
                if failure.code == .keyNotFound {
                    // The contender is gone (removed by someone else): the grant is lost, and the
                    // lock key its session still holds must not keep the line waiting.
                    forgetExclusive(prefix: prefix, session: session)
                    _ = try await txn(
                        [.kv("check-session", lockKey, session: session.rawValue), .kv("delete", lockKey)],
                        operation: "atomicDelete", key: key)
                }
                throw failure
            }
            // We did not hold the lock key: leave the line, then make sure a lock-key acquisition
            // that raced with this release (taken for our contender just before it left) does not
            // outlive it. Later acquisitions check the contender's key and fail.
            forgetExclusive(prefix: prefix, session: session)
            try await deleteAtRevision(key, revision: revision)
            _ = try await txn(
                [.kv("check-session", lockKey, session: session.rawValue), .kv("delete", lockKey)],
                operation: "atomicDelete", key: key)
            return
        }
        try await deleteAtRevision(key, revision: revision)
    }

    private func deleteAtRevision(_ key: Key, revision: Revision) async throws(CoordinationError) {
        let consulKey = keySpace.consulKey(key)
        // `delete-cas` alone succeeds on a missing key; `check-index` fails on it.
        let outcome = try await txn(
            [
                .kv("check-index", consulKey, index: revision.value),
                .kv("delete-cas", consulKey, index: revision.value),
            ],
            operation: "atomicDelete", key: key)
        if case .rolledBack = outcome {
            throw try await conditionFailure("compare-and-delete", key: key, expected: revision)
        }
    }

    /// After a failed compare: tells `keyNotFound` from `revisionMismatch` (Consul says only "false").
    private func conditionFailure(_ what: String, key: Key, expected: Revision) async throws(CoordinationError)
        -> CoordinationError
    {
        guard let current = try await readKey(key, operation: what).entry else {
            return errors.make(.keyNotFound, "\(what) failed: the key does not exist", key: key)
        }
        return errors.make(
            .revisionMismatch, "\(what) failed: expected revision \(expected), found \(current.modifyRevision)",
            key: key)
    }
}
