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
