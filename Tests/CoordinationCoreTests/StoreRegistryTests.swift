import CoordinationCore
import Synchronization
import Testing

@Suite("StoreRegistry")
struct StoreRegistryTests {
    /// What a factory saw. The core test target cannot link a backend, so the factories here record
    /// their input and then throw a distinctive error instead of returning a store.
    final class Calls: Sendable {
        private let recorded = Mutex<[ConnectionString]>([])
        var all: [ConnectionString] { recorded.withLock { $0 } }
        func record(_ connection: ConnectionString) { recorded.withLock { $0.append(connection) } }
    }

    static let marker = CoordinationError(.unsupported, "test factory reached")

    static func recordingFactory(_ calls: Calls) -> StoreRegistry.Factory {
        { (connection, _) throws(CoordinationError) in
            calls.record(connection)
            throw StoreRegistryTests.marker
        }
    }

    @Test("an empty registry knows no schemes and says so")
    func emptyRegistry() throws {
        let registry = StoreRegistry()
        #expect(registry.schemes.isEmpty)
        let error = try #require(throws: CoordinationError.self) { try registry.makeStore("etcd://h:2379") }
        #expect(error.code == .unknownScheme)
        #expect(error.message.contains("etcd://"))
        #expect(error.message.contains("none"))
    }

    @Test("an unknown scheme gives unknownScheme and lists the registered schemes")
    func unknownScheme() throws {
        var registry = StoreRegistry()
        let calls = Calls()
        registry.register(scheme: "memory", factory: Self.recordingFactory(calls))
        registry.register(scheme: "etcd", factory: Self.recordingFactory(calls))
        #expect(registry.schemes == ["etcd", "memory"])

        let error = try #require(throws: CoordinationError.self) { try registry.makeStore("redis://h:6379") }
        #expect(error.code == .unknownScheme)
        #expect(error == CoordinationError(.unknownScheme, ""))
        #expect(error.message.contains("redis://"))
        #expect(error.message.contains("etcd://"))
        #expect(error.message.contains("memory://"))
        #expect(calls.all.isEmpty)
    }

    @Test("the registered factory is called with the parsed connection string")
    func factoryGetsParsedConnectionString() throws {
        var registry = StoreRegistry()
        let calls = Calls()
        registry.register(scheme: "etcd", factory: Self.recordingFactory(calls))

        let error = try #require(throws: CoordinationError.self) {
            try registry.makeStore("etcd://root:pw@h1:2379,h2:22379/prefix?x=1")
        }
        #expect(error.code == .unsupported)
        #expect(error.message == "test factory reached")

        let seen = try #require(calls.all.first)
        #expect(calls.all.count == 1)
        #expect(seen == (try ConnectionString("etcd://root:pw@h1:2379,h2:22379/prefix?x=1")))
        #expect(seen.scheme == "etcd")
        #expect(seen.addresses.map(\.host) == ["h1", "h2"])
        #expect(seen.path == "prefix")
        #expect(seen.query == ["x": "1"])
        #expect(seen.user == "root")
        #expect(seen.password == "pw")
    }

    @Test("schemes match case-insensitively")
    func schemesAreCaseInsensitive() throws {
        var registry = StoreRegistry()
        let calls = Calls()
        registry.register(scheme: "ETCD", factory: Self.recordingFactory(calls))
        #expect(registry.schemes == ["etcd"])
        #expect(throws: StoreRegistryTests.marker) { try registry.makeStore("Etcd://h:2379") }
        #expect(calls.all.count == 1)
    }

    @Test("registering a scheme again replaces its factory")
    func reRegistrationReplaces() throws {
        var registry = StoreRegistry()
        let first = Calls()
        let second = Calls()
        registry.register(scheme: "etcd", factory: Self.recordingFactory(first))
        registry.register(scheme: "etcd", factory: Self.recordingFactory(second))
        #expect(registry.schemes == ["etcd"])
        #expect(throws: StoreRegistryTests.marker) { try registry.makeStore("etcd://h:2379") }
        #expect(first.all.isEmpty)
        #expect(second.all.count == 1)
    }

    @Test("an invalid connection string fails before any factory runs")
    func invalidConnectionString() throws {
        var registry = StoreRegistry()
        let calls = Calls()
        registry.register(scheme: "etcd", factory: Self.recordingFactory(calls))
        let error = try #require(throws: CoordinationError.self) { try registry.makeStore("etcd://h:0") }
        #expect(error.code == .invalidConnectionString)
        #expect(calls.all.isEmpty)
    }
}
