import CoordinationCore
import ServiceLifecycle

/// A backend under test: how to open clients of one real server (or one in-memory store).
///
/// Third-party backends implement this to run the same suites the bundled backends pass.
public protocol ConformanceBackend: Sendable {
    /// A short name for reports (`memory`, `etcd`…).
    var name: String { get }
    /// A session TTL short enough for expiry checks and within the backend's limits.
    var sessionTTL: Duration { get }
    /// Checks this backend explicitly opts out of, by check name, with the reason. Opt-outs are
    /// reported, never silently skipped.
    var optOuts: [String: String] { get }
    /// A connection string for the same server that another process can open (the fault suite's
    /// pause drill runs a holder in a peer process); `nil` for a backend that lives in one process.
    var peerConnectionString: String? { get }
    /// A new client of the server, not running yet. The lifecycle checks run it in a
    /// `ServiceGroup` of their own; the default ``withClients(_:_:)`` runs `count` of them.
    func makeStore() throws -> any KeyValueStore
    /// Opens `count` clients of the same server, runs them for the duration of `body`, closes them.
    /// (An in-memory backend hands out the same store `count` times.)
    func withClients(_ count: Int, _ body: @Sendable ([any KeyValueStore]) async throws -> Void) async throws
}

extension ConformanceBackend {
    public var optOuts: [String: String] { [:] }
    public var peerConnectionString: String? { nil }

    /// Runs `count` stores from ``makeStore()``, each in a task of its own, for the duration of
    /// `body`, then closes them all (also when `body` throws).
    public func withClients(_ count: Int, _ body: @Sendable ([any KeyValueStore]) async throws -> Void) async throws {
        let stores = try (0..<count).map { _ in try makeStore() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores { group.addTask { try await store.run() } }
            defer { group.cancelAll() }
            do {
                try await body(stores)
            } catch {
                for store in stores { await store.close() }
                throw error
            }
            for store in stores { await store.close() }
        }
    }
}

/// What a check gets: its clients, a fresh root key of its own, and the backend's TTL.
public struct ConformanceContext: Sendable {
    /// The clients; `clients[0]` is ``store``.
    public let clients: [any KeyValueStore]
    /// A key unique to this run of this check; everything the check writes goes below it.
    public let root: Key
    public let sessionTTL: Duration
    /// The backend's ``ConformanceBackend/peerConnectionString``.
    public let peerConnectionString: String?
    /// A new client of the same server, not running yet (``ConformanceBackend/makeStore()``).
    public let makeStore: @Sendable () throws -> any KeyValueStore

    public var store: any KeyValueStore { clients[0] }

    /// `root/<path>`.
    public func key(_ path: String) throws -> Key { try root.appending(path) }

    /// A generous deadline for anything that depends on a TTL running out.
    public var expiryDeadline: Duration { sessionTTL * 3 + .seconds(5) }
}

/// One conformance check: a behaviour every backend must show.
public struct ConformanceCheck: Sendable, CustomStringConvertible {
    public let suite: String
    public let name: String
    /// How many clients of the same server the check needs.
    public let clients: Int
    /// Capabilities the check needs; a backend without them must list the check in its opt-outs.
    public let requires: StoreCapabilities
    private let body: @Sendable (ConformanceContext) async throws -> Void

    public init(
        suite: String,
        _ name: String,
        clients: Int = 1,
        requires: StoreCapabilities = [],
        body: @escaping @Sendable (ConformanceContext) async throws -> Void
    ) {
        self.suite = suite
        self.name = name
        self.clients = clients
        self.requires = requires
        self.body = body
    }

    public var description: String { "\(suite): \(name)" }

    /// The result of running a check.
    public enum Outcome: Sendable, Equatable {
        case passed
        /// The backend opted out, with its reason.
        case optedOut(String)
    }

    /// Runs the check against `backend` under a fresh root key. Throws ``ConformanceFailure`` (or
    /// the error the store threw) when the backend does not conform. A check the backend opted out of
    /// is not run and returns ``Outcome/optedOut(_:)``; a check needing a capability the backend
    /// lacks without an opt-out fails.
    @discardableResult
    public func run(on backend: some ConformanceBackend) async throws -> Outcome {
        if let reason = backend.optOuts[name] { return .optedOut(reason) }
        let body = self.body
        let root = try Key("conformance/\(suite.filter { $0.isLetter || $0.isNumber })/\(Self.uniqueSuffix())")
        let requires = self.requires
        let name = self.name
        let started = ContinuousClock.now
        defer { print("\(backend.name): '\(description)' ran for \(ContinuousClock.now - started)") }
        let clients = self.clients
        // A check that hangs (its own waits all have deadlines; this also covers opening and
        // closing its clients) fails with its name instead of holding the suite.
        try await withDeadline(.seconds(180), "check '\(description)' on \(backend.name)") {
            try await Self.run(body, on: backend, clients: clients, root: root, requires: requires, name: name)
        }
        return .passed
    }

    /// ``run(on:)`` for a test: a check the backend opted out of is printed with its reason
    /// (reported, never silent); a failure throws.
    public func runReportingOptOut(on backend: some ConformanceBackend) async throws {
        if case .optedOut(let reason) = try await run(on: backend) {
            print("\(backend.name) opts out of '\(name)': \(reason)")
        }
    }

    private static func run(
        _ body: @escaping @Sendable (ConformanceContext) async throws -> Void, on backend: some ConformanceBackend,
        clients: Int, root: Key, requires: StoreCapabilities, name: String
    ) async throws {
        let ttl = backend.sessionTTL
        let peerConnectionString = backend.peerConnectionString
        let makeStore: @Sendable () throws -> any KeyValueStore = { try backend.makeStore() }
        try await backend.withClients(clients) { stores in
            let missing = requires.subtracting(stores[0].capabilities)
            guard missing.isEmpty else {
                throw ConformanceFailure("check '\(name)' needs capabilities the backend lacks and it has no opt-out")
            }
            let context = ConformanceContext(
                clients: stores, root: root, sessionTTL: ttl, peerConnectionString: peerConnectionString,
                makeStore: makeStore)
            try await body(context)
            // Leave the server clean for the next check.
            try? await stores[0].deleteTree(root)
        }
    }

    private static func uniqueSuffix() -> String {
        String(UInt64.random(in: 0 ... .max), radix: 36)
    }
}
