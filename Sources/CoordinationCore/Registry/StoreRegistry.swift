import Logging

/// What every store factory is handed besides the connection string.
public struct StoreConfiguration: Sendable {
    /// Where the store logs (at info level or below).
    public var logger: Logger

    public init(logger: Logger = Logger(label: "swift-coordination")) {
        self.logger = logger
    }
}

/// Picks a backend at run time from a connection string's scheme.
///
/// The core names no backend: each backend module offers a `register(in:)` that adds its scheme,
/// and a program registers the backends it links.
///
/// ```swift
/// var registry = StoreRegistry()
/// MemoryStore.register(in: &registry)
/// let store = try registry.makeStore("memory://")
/// ```
public struct StoreRegistry: Sendable {
    public typealias Factory =
        @Sendable (ConnectionString, StoreConfiguration) throws(CoordinationError) -> any KeyValueStore

    private var factories: [String: Factory] = [:]

    public init() {}

    /// Adds (or replaces) the factory for `scheme`.
    public mutating func register(scheme: String, factory: @escaping Factory) {
        factories[scheme.lowercased()] = factory
    }

    /// The schemes that can be opened, sorted.
    public var schemes: [String] { factories.keys.sorted() }

    /// Creates (but does not run) the store a connection string names.
    public func makeStore(
        _ connectionString: String,
        configuration: StoreConfiguration = StoreConfiguration()
    ) throws(CoordinationError) -> any KeyValueStore {
        let parsed = try ConnectionString(connectionString)
        guard let factory = factories[parsed.scheme] else {
            let known = schemes.map { "\($0)://" }.joined(separator: ", ")
            throw CoordinationError(
                .unknownScheme,
                "no backend registered for '\(parsed.scheme)://' (registered: \(known.isEmpty ? "none" : known))"
            )
        }
        return try factory(parsed, configuration)
    }
}
