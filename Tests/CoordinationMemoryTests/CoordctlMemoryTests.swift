import CoordinationTestKit
import Testing

/// `coordctl --store memory://`: each run has a store of its own, so only what one run does by
/// itself can be checked (a lock around a command, a key that is not there); the shared-server
/// behaviour is the coordctl conformance suite on the other backends.
@Suite("coordctl on the in-memory store")
struct CoordctlMemoryTests {
    func run(_ arguments: [String]) async throws -> (status: Int32, printed: String) {
        let process = try PeerProcess(
            name: "coordctl", executable: try BuiltExecutable.path("coordctl", override: "COORDCTL"),
            arguments: ["--store", "memory://"] + arguments)
        defer { process.kill() }
        return (try await process.waitForExit(), process.printed)
    }

    @Test func lockRunsTheCommandWithItsToken() async throws {
        let (status, printed) = try await run([
            "lock", "locks/a", "--", "sh", "-c", "echo token=$COORD_FENCING_TOKEN; exit 4",
        ])
        #expect(status == 4)
        #expect(printed.contains("token=") && !printed.contains("token=\n"), "\(printed)")
    }

    @Test func putThenGetInOneProcessIsAFreshStore() async throws {
        #expect(try await run(["put", "a/b", "1"]).status == 0)
        let (status, printed) = try await run(["get", "a/b"])
        #expect(status == 2 && printed.contains("no key"), "\(printed)")
    }

    @Test func sessionListWorksOnAStoreThatCanList() async throws {
        let (status, printed) = try await run(["session", "ls"])
        #expect(status == 0 && printed.isEmpty, "\(printed)")
    }

    @Test func helpIsThereForEveryCommand() async throws {
        for command in ["get", "put", "del", "ls", "watch", "lock", "elect", "register", "discover", "session"] {
            let (status, printed) = try await run([command, "--help"])
            #expect(status == 0 && printed.contains("USAGE"), "\(command) --help: \(printed)")
        }
    }
}
