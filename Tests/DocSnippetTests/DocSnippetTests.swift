import Testing

/// The documentation's snippets compile (the generated file is part of this target, built in the
/// isolation of a `@main` type's `main()`), and those that need no server also run.
@Suite("documentation snippets")
struct DocSnippetTests {
    @Test("the in-memory snippets run")
    @MainActor
    func inMemorySnippetsRun() async throws {
        try await DocSnippets.README_1()
        try await DocSnippets.README_2()
        try await DocSnippets.docs_architecture_1()
        try await DocSnippets.Sources_CoordinationMemory_Documentation_docc_CoordinationMemory_1()
        try await DocSnippets.Sources_CoordinationMemory_MemoryStore_1()
        try await DocSnippets.Sources_CoordinationCore_Registry_StoreRegistry_1()
        try await DocSnippets.Sources_Coordination_Locks_Lock_1()
    }
}
