import ArgumentParser
import Coordination

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Sessions on the store.", subcommands: [ListSessions.self, Revoke.self])

    @ParentCommand var root: Coordctl

    struct ListSessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List every client's sessions: '<id> <ttl> [name]' per line (etcd, Consul, memory).",
            discussion: """
                Only stores that can list sessions offer it: etcd (every lease; etcd gives no TTL
                in its list, shown as '-'), Consul and the in-memory store. On ZooKeeper and etcd v2
                it exits 1 with a message (they have no such request).
                """)

        @OptionGroup var local: StoreOptions
        @ParentCommand var session: SessionCommand
        var options: StoreOptions { local.merged(over: session.root.global) }

        func run() async throws {
            let sessions = try await options.withStore { store in
                guard let lister = store as? any SessionListingStore else {
                    throw CoordinationError(
                        .unsupported,
                        "this store cannot list sessions (\(store.storeDescription.backend) offers no such request here)"
                    )
                }
                return try await lister.listSessions()
            }
            for summary in sessions.sorted(by: { $0.id.rawValue < $1.id.rawValue }) {
                let ttl = summary.ttl.map(SessionCommand.text) ?? "-"
                Diagnostics.printLine(
                    [summary.id.rawValue, ttl, summary.name].compactMap { $0 }.joined(separator: " "))
            }
        }
    }

    /// `10s`, or `300ms` for a TTL that is not whole seconds.
    fileprivate static func text(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return attoseconds == 0 ? "\(seconds)s" : "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a session by id (an operator's tool): its keys go, its owner learns it has expired.")

        @OptionGroup var local: StoreOptions
        @ParentCommand var session: SessionCommand
        var options: StoreOptions { local.merged(over: session.root.global) }
        @Argument(help: "The session id, as the store names it (etcd: lease id in hex).") var id: String

        func run() async throws {
            try await options.withStore { store in try await store.revokeSession(SessionID(id)) }
        }
    }
}
