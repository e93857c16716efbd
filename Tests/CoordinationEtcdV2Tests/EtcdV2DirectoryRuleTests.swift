import CoordinationCore
import CoordinationEtcdV2
import CoordinationTestKit
import Testing

/// etcd v2's directory rules, as the server enforces them, surfaced as typed errors.
@Suite(
    "etcd v2 directory rules",
    .enabled(if: EtcdV2TestServer.isAvailable, "needs ETCD_V2_ENDPOINT (scripts/test starts etcd)"))
struct EtcdV2DirectoryRuleTests {
    static func root() throws -> Key { try Key("tests/v2dirs/\(UInt32.random(in: 0 ... .max))") }

    @Test("a put under a/b/c makes a/b a directory, which then holds no value")
    func putOnADirectoryFails() async throws {
        let root = try Self.root()
        try await EtcdV2TestServer.withStore { store in
            try await store.put(try root.appending("a/b/c"), "leaf")
            #expect(try await store.get(try root.appending("a/b")) == nil, "a directory is not a key")
            #expect(!(try await store.exists(try root.appending("a/b"))))
            let error = await #expect(throws: CoordinationError.self) {
                try await store.put(try root.appending("a/b"), "value on a directory")
            }
            #expect(error?.code == .isADirectory)
            #expect(error?.key == (try root.appending("a/b")).path, "the error names the key")
            #expect(error?.backend == "etcdv2")
            let create = await #expect(throws: CoordinationError.self) {
                try await store.atomicPut(try root.appending("a/b"), [1], condition: .absent)
            }
            #expect(create?.code == .keyExists || create?.code == .isADirectory)
            let delete = await #expect(throws: CoordinationError.self) {
                try await store.delete(try root.appending("a/b"))
            }
            #expect(delete?.code == .isADirectory, "delete of a directory points to deleteTree")
            try await store.deleteTree(root)
        }
    }

    @Test("a put below a key that holds a value fails with notADirectory")
    func putBelowAValueFails() async throws {
        let root = try Self.root()
        try await EtcdV2TestServer.withStore { store in
            try await store.put(try root.appending("file"), "value")
            let error = await #expect(throws: CoordinationError.self) {
                try await store.put(try root.appending("file/child"), "x")
            }
            #expect(error?.code == .notADirectory)
            #expect(try await store.getString(try root.appending("file")) == "value", "the value is kept")
            try await store.deleteTree(root)
        }
    }

    @Test("watchTree on a plain key fails with notADirectory; watch on a directory with isADirectory")
    func watchRules() async throws {
        let root = try Self.root()
        try await EtcdV2TestServer.withStore { store in
            try await store.put(try root.appending("plain"), "v")
            let tree = await #expect(throws: CoordinationError.self) {
                _ = try await store.watchTree(try root.appending("plain"))
            }
            #expect(tree?.code == .notADirectory)
            try await store.put(try root.appending("dir/x"), "v")
            let key = await #expect(throws: CoordinationError.self) {
                _ = try await store.watch(try root.appending("dir"))
            }
            #expect(key?.code == .isADirectory)
            try await store.deleteTree(root)
        }
    }

    @Test("PutOptions.isDirectory creates an empty directory (libkv's IsDir)")
    func isDirectoryCreatesADirectory() async throws {
        let root = try Self.root()
        try await EtcdV2TestServer.withStore { store in
            let directory = try root.appending("empty")
            try await store.put(directory, [], options: PutOptions(isDirectory: true))
            try await store.put(directory, [], options: PutOptions(isDirectory: true))  // again: no error
            #expect(try await store.list(directory).isEmpty)
            #expect(!(try await store.exists(directory)), "a directory is not a key")
            let error = await #expect(throws: CoordinationError.self) { try await store.put(directory, "v") }
            #expect(error?.code == .isADirectory)
            // watchTree works on it, and sees a child appear.
            let stream = try await store.watchTree(directory)
            try await store.put(try directory.appending("child"), "c")
            let events = try await collect(stream, 2)
            guard case .put(let entry) = events[1] else {
                Issue.record("expected a put, got \(events[1])")
                return
            }
            #expect(entry.stringValue == "c")
            try await store.deleteTree(root)
        }
    }

    @Test("deleteTree of a subdirectory is reported to a tree watch as one delete per key")
    func deletedDirectoryExpandsToKeys() async throws {
        let root = try Self.root()
        try await EtcdV2TestServer.withStore { store in
            try await store.put(try root.appending("w/sub/a"), "a")
            try await store.put(try root.appending("w/sub/b"), "b")
            try await store.put(try root.appending("w/keep"), "k")
            let stream = try await store.watchTree(try root.appending("w"))
            try await store.deleteTree(try root.appending("w/sub"))
            let events = try await collect(stream, 3)
            let deleted = events.dropFirst().compactMap { event -> String? in
                if case .deleted(let deletion) = event { return String(deletion.key.name) }
                return nil
            }
            #expect(deleted == ["a", "b"])
            try await store.deleteTree(root)
        }
    }

    @Test("a key bound to a session that expires is reported with reason .expired")
    func expiryIsDistinguished() async throws {
        let root = try Self.root()
        try await EtcdV2TestServer.withStore { store in
            let session = try await store.makeSession(ttl: .seconds(1))
            #expect(session.ttl == .seconds(1))
            let key = try root.appending("ephemeral")
            try await store.put(key, "x", options: .boundTo(session))
            let stream = try await store.watch(key)
            session.abandon()
            let events = try await collect(stream, 2, within: .seconds(15))
            guard case .deleted(let deletion) = events[1] else {
                Issue.record("expected a deletion, got \(events[1])")
                return
            }
            #expect(deletion.reason == .expired)
            try await store.deleteTree(root)
        }
    }
}
