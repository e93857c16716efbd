import ArgumentParser
import Coordination
import CoordinationConsul
import CoordinationEtcd
import CoordinationEtcdV2
import CoordinationMemory
import CoordinationZooKeeper
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The options every command takes: where the store is, and how much to say.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .shortAndLong,
        help: ArgumentHelp(
            "The store's connection string (default: $COORD_STORE).", valueName: "connection-string"))
    var store: String?

    @Flag(name: .shortAndLong, help: "Log what the library does (to standard error).")
    var verbose = false

    /// These options, with what is not given here taken from `parent` (the options before the
    /// subcommand).
    func merged(over parent: StoreOptions) -> StoreOptions {
        var merged = self
        if merged.store == nil { merged.store = parent.store }
        merged.verbose = verbose || parent.verbose
        return merged
    }

    /// The connection string from `--store` or `COORD_STORE`.
    func connectionString() throws -> String {
        if let store { return store }
        if let fromEnvironment = ProcessInfo.processInfo.environment["COORD_STORE"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        throw ValidationError("no store: pass --store <connection-string> or set COORD_STORE")
    }

    /// A store for the connection string, not running yet; a bad string is a usage error.
    func makeStore() throws -> any KeyValueStore {
        Diagnostics.bootstrapLogging(verbose: verbose)
        var registry = StoreRegistry()
        MemoryStore.register(in: &registry)
        EtcdStore.register(in: &registry)
        EtcdV2Store.register(in: &registry)
        ConsulStore.register(in: &registry)
        ZooKeeperStore.register(in: &registry)
        let text = try connectionString()
        do {
            return try registry.makeStore(text, configuration: StoreConfiguration(logger: Diagnostics.logger))
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// Runs a store for the length of `body`; a store error becomes exit status 1 with its message.
    func withStore<Result>(_ body: (any KeyValueStore) async throws -> Result) async throws -> Result {
        let store = try makeStore()
        do {
            return try await withRunningStore(store, body)
        } catch let error as CoordinationError {
            throw Diagnostics.fail(error)
        }
    }

    private func withRunningStore<Store: KeyValueStore, Result>(
        _ store: Store, _ body: (any KeyValueStore) async throws -> Result
    ) async throws -> Result {
        try await store.withRunning { store in try await body(store) }
    }
}

/// A key given on the command line.
struct KeyArgument: ExpressibleByArgument {
    let key: Key

    init?(argument: String) {
        guard let key = try? Key(argument) else { return nil }
        self.key = key
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// A duration given on the command line: `500ms`, `10s`, `2m`, `1h`, or seconds.
struct DurationArgument: ExpressibleByArgument {
    let duration: Duration

    init?(argument: String) {
        guard let duration = ConnectionString.parseDuration(argument), duration > .zero else { return nil }
        self.duration = duration
    }
}
