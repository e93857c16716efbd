import ArgumentParser
import Coordination
import Foundation

/// How an entry is printed: its value, or one JSON object per line with everything the store knows.
enum EntryFormat: String, ExpressibleByArgument, CaseIterable {
    case value, json

    func line(_ entry: Entry) -> String {
        switch self {
        case .value:
            return entry.stringValue
        case .json:
            let record = Record(
                key: entry.key.path, value: entry.stringValue, createRevision: entry.createRevision.value,
                modifyRevision: entry.modifyRevision.value, session: entry.session?.rawValue)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }

    /// One entry as JSON.
    private struct Record: Encodable {
        let key: String
        let value: String
        let createRevision: UInt64
        let modifyRevision: UInt64
        let session: String?
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the value of a key (exit status 2 if there is none).")

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The key, e.g. config/mode.") var key: KeyArgument
    @Option(name: .shortAndLong, help: "value (default) or json (key, value, revisions, session).")
    var output: EntryFormat = .value

    func run() async throws {
        let entry = try await options.withStore { store in try await store.get(key.key) }
        guard let entry else {
            Diagnostics.say("no key '\(key.key)'")
            throw Diagnostics.notFound
        }
        Diagnostics.printLine(output.line(entry))
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a value at a key ('-' reads it from standard input).")

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The key.") var key: KeyArgument
    @Argument(help: "The value, or '-' for standard input.") var value: String

    func run() async throws {
        let bytes: [UInt8] = value == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : Array(value.utf8)
        try await options.withStore { store in try await store.put(key.key, bytes, options: .none) }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del", abstract: "Delete a key, or with --prefix a key and everything below it.")

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The key.") var key: KeyArgument
    @Flag(help: "Delete the whole subtree under the key.") var prefix = false

    func run() async throws {
        try await options.withStore { store in
            if prefix { try await store.deleteTree(key.key) } else { try await store.delete(key.key) }
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List the keys below a prefix (recursive), one per line.")

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The prefix.") var prefix: KeyArgument
    @Option(name: .shortAndLong, help: "key (default), value (key = value) or json.") var output: ListFormat = .key

    enum ListFormat: String, ExpressibleByArgument, CaseIterable { case key, value, json }

    func run() async throws {
        let entries = try await options.withStore { store in try await store.list(prefix.key) }
        for entry in entries {
            switch output {
            case .key: Diagnostics.printLine(entry.key.path)
            case .value: Diagnostics.printLine("\(entry.key.path) = \(entry.stringValue)")
            case .json: Diagnostics.printLine(EntryFormat.json.line(entry))
            }
        }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a key's (or with --prefix a subtree's) state, then every change, until interrupted.",
        discussion: """
            Lines: 'PUT <key> <value>' for each entry present at the start and each write after it,
            'DELETE <key>' (or 'EXPIRED <key>') for each removal, and 'RESYNC' before a fresh state
            when the store could not resume the watch without a gap.
            """)

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The key.") var key: KeyArgument
    @Flag(help: "Watch everything below the key instead.") var prefix = false
    @Option(name: .shortAndLong, help: "Stop after this many changes (after the first state).") var count: Int?

    func run() async throws {
        let count = self.count
        try await options.withStore { store in
            let events = prefix ? try await store.watchTree(key.key) : try await store.watch(key.key)
            _ = try await Interruption.run {
                var changes = 0
                for try await event in events {
                    switch event {
                    case .snapshot(let snapshot):
                        if snapshot.historyLost { Diagnostics.printLine("RESYNC") }
                        for entry in snapshot.entries { Diagnostics.printLine("PUT \(entry.key) \(entry.stringValue)") }
                        if count == 0 { return }
                        continue
                    case .put(let entry):
                        Diagnostics.printLine("PUT \(entry.key) \(entry.stringValue)")
                    case .deleted(let deletion):
                        Diagnostics.printLine("\(deletion.reason == .expired ? "EXPIRED" : "DELETE") \(deletion.key)")
                    }
                    changes += 1
                    if let count, changes >= count { return }
                }
            }
        }
    }
}
