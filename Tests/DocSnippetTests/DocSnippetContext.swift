import Coordination
import CoordinationCore
import CoordinationMemory
import CoordinationTestKit
import Logging

/// What the documentation's snippets use without declaring it: the surroundings a reader has.
extension DocSnippets {
    static let logger = Logger(label: "doc-snippets")
    static let connectionString = "memory://"
    /// A running store, for snippets that show one call on "your store".
    static let store = MemoryStore()
    /// A registration and a candidate on it, for the snippets that put them in a `ServiceGroup`.
    static let registration = ServiceRegistration(
        try! ServiceInstance(name: "api", id: "api-1", address: "127.0.0.1", port: 8080),
        base: try! Key("services"), store: store)
    static let candidate = LeaderCandidate(
        election: try! Key("elections/scheduler"), value: Array("node-1".utf8), store: store)

    static func runJob(fencedBy token: FencingToken) async throws {}
    static func runReport(fencingToken token: FencingToken) async throws {}
}

/// The backend of the conformance kit's snippets.
struct MyBackend: ConformanceBackend {
    let name = "memory (snippet)"
    let sessionTTL: Duration = .milliseconds(300)

    func makeStore() throws -> any KeyValueStore { MemoryStore() }

    func withClients(_ count: Int, _ body: @Sendable ([any KeyValueStore]) async throws -> Void) async throws {
        try await MemoryStore().withRunning { store in try await body(Array(repeating: store, count: count)) }
    }
}
