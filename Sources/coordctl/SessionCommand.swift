import ArgumentParser
import Coordination

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Sessions on the store.", subcommands: [Revoke.self])

    @ParentCommand var root: Coordctl

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
