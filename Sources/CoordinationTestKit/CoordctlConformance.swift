import Coordination
import CoordinationCore
import Foundation

/// The `coordctl` suite: the built command-line tool run as a user runs it, against the same
/// server as `ctx.store`, which checks what it did (and does what an operator or another process
/// would do to it). The test target that runs these depends on the `coordctl` product, so SwiftPM
/// builds it beside the test binary (`COORDCTL` overrides the path).
///
/// Every check needs the backend's ``ConformanceBackend/peerConnectionString``.
public enum CoordctlConformance {
    static let suite = "coordctl"

    public static let checks: [ConformanceCheck] = [
        keys, watchPrintsChanges, lockRunsCommandWithToken, lockWhileHeld, lockLostStopsCommand,
        lockPassesSignalsOn, electAndObserve, registerAndDiscover, sessionList, sessionRevoke, usageAndStoreErrors,
    ]

    static func check(
        _ name: String,
        _ body: @escaping @Sendable (ConformanceContext) async throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck(suite: suite, name, body: body)
    }

    /// The connection string the tool is given.
    static func store(_ ctx: ConformanceContext) throws -> String {
        guard let url = ctx.peerConnectionString else {
            throw ConformanceFailure("the coordctl checks need the backend's peerConnectionString")
        }
        return url
    }

    /// Starts `coordctl --store URL arguments…`.
    static func start(
        _ ctx: ConformanceContext, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> PeerProcess {
        try PeerProcess(
            name: "coordctl " + arguments.prefix(1).joined(),
            executable: try BuiltExecutable.path("coordctl", override: "COORDCTL"),
            arguments: ["--store", try store(ctx)] + arguments,
            environment: environment)
    }

    /// Runs `coordctl --store URL arguments…` to its end: its exit status and what it printed.
    static func run(_ ctx: ConformanceContext, _ arguments: [String]) async throws -> (status: Int32, printed: String) {
        let process = try start(ctx, arguments)
        defer { process.kill() }
        let status = try await process.waitForExit(within: .seconds(45))
        return (status, process.printed)
    }

    /// Runs it and expects `status`; returns what it printed.
    @discardableResult
    static func run(
        _ ctx: ConformanceContext, _ arguments: [String], expecting status: Int32, file: String = #fileID,
        line: Int = #line
    ) async throws -> String {
        let (actual, printed) = try await run(ctx, arguments)
        try expect(
            actual == status,
            "coordctl \(arguments.joined(separator: " ")) exited \(actual), not \(status): \(printed)",
            file: file, line: line)
        return printed
    }

    static let keys = check("get, put, del, ls: values written by either side are read by the other") { ctx in
        let config = try ctx.key("config")
        let mode = try config.appending("mode")
        try await run(ctx, ["put", mode.path, "blue/green"], expecting: 0)
        try expectEqual(try await ctx.store.get(mode)?.stringValue, "blue/green", "the value coordctl put")
        try await ctx.store.put(try config.appending("limit"), Array("42".utf8), options: .none)
        try expectEqual(try await run(ctx, ["get", mode.path], expecting: 0), "blue/green\n", "get")
        let json = try await run(ctx, ["get", "--output", "json", try config.appending("limit").path], expecting: 0)
        try expect(
            json.contains("\"value\":\"42\"") && json.contains("\"key\":\"\(config.path)/limit\""),
            "get --output json: \(json)")
        try expectEqual(
            try await run(ctx, ["ls", config.path], expecting: 0), "\(config.path)/limit\n\(mode.path)\n", "ls")
        try await run(ctx, ["del", mode.path], expecting: 0)
        try expect(try await ctx.store.get(mode) == nil, "del left the key")
        let missing = try await run(ctx, ["get", mode.path], expecting: 2)
        try expect(missing.contains("no key"), "get of a missing key: \(missing)")
        try await run(ctx, ["del", "--prefix", config.path], expecting: 0)
        try expect(try await ctx.store.list(config).isEmpty, "del --prefix left keys")
    }

    static let watchPrintsChanges = check("watch --prefix prints the first state, then each change") { ctx in
        let base = try ctx.key("watched")
        try await ctx.store.put(try base.appending("a"), Array("1".utf8), options: .none)
        let watch = try start(ctx, ["watch", "--prefix", "--count", "2", base.path])
        defer { watch.kill() }
        try await watch.waitForOutput("PUT \(base.path)/a 1")
        try await ctx.store.put(try base.appending("b"), Array("2".utf8), options: .none)
        try await watch.waitForOutput("PUT \(base.path)/b 2")
        try await ctx.store.delete(try base.appending("a"))
        try await watch.waitForOutput("DELETE \(base.path)/a")
        try expectEqual(try await watch.waitForExit(), 0, "watch --count 2's exit status")
    }

    static let lockRunsCommandWithToken = check(
        "lock runs the command while holding, with COORD_FENCING_TOKEN, and exits with its status"
    ) { ctx in
        let name = try ctx.key("locks/job")
        let printed = try await run(
            ctx,
            [
                "lock", name.path, "--", "sh", "-c",
                "echo token=$COORD_FENCING_TOKEN key=$COORD_LOCK_KEY; exit 7",
            ],
            expecting: 7)
        guard let token = printed.split(separator: "token=").last?.split(separator: " ").first.flatMap({ UInt64($0) })
        else {
            throw ConformanceFailure("no fencing token in the command's environment: \(printed)")
        }
        try expect(token > 0, "the fencing token is \(token)")
        try expect(printed.contains("key=\(name.path)/"), "COORD_LOCK_KEY is not below the lock: \(printed)")
        let left = try await ctx.store.line.contenders(in: name)
        try expect(left.isEmpty, "the lock still has contenders after the command: \(left)")
        // A second run is granted again, with a larger token.
        let again = try await run(
            ctx, ["lock", name.path, "--", "sh", "-c", "echo token=$COORD_FENCING_TOKEN"], expecting: 0)
        let second = again.split(separator: "token=").last?.split(separator: "\n").first.flatMap { UInt64($0) }
        try expect(
            (second ?? 0) > token, "the second grant's token \(String(describing: second)) is not above \(token)")
    }

    static let lockWhileHeld = check(
        "lock --no-wait and --timeout exit 2 while another holds the lock, and leave no key"
    ) { ctx in
        let name = try ctx.key("locks/held")
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 5)
        let lock = Lock(name, session: session, store: ctx.store)
        let grant = try await lock.acquire()
        let busy = try await run(ctx, ["lock", "--no-wait", name.path, "--", "true"], expecting: 2)
        try expect(busy.contains("held by another"), "lock --no-wait while held: \(busy)")
        let late = try await run(ctx, ["lock", "--timeout", "500ms", name.path, "--", "true"], expecting: 2)
        try expect(late.contains("not granted within"), "lock --timeout while held: \(late)")
        let line = try await ctx.store.line.contenders(in: name)
        try expectEqual(line.map(\.key), [grant.key], "the lock's line after the refused and timed-out tries")
        try await grant.release()
        try await session.close()
    }

    static let lockLostStopsCommand = check(
        "when the lock is lost (its session revoked by an operator), the command is stopped and coordctl exits 3"
    ) { ctx in
        let name = try ctx.key("locks/lost")
        let holder = try start(
            ctx, ["lock", "--kill-after", "2s", name.path, "--", "sh", "-c", "echo child=$$; exec sleep 60"])
        defer { holder.kill() }
        try await holder.waitForOutput("child=")
        let pid = holder.printed.split(separator: "child=").last?.split(separator: "\n").first.flatMap { Int32($0) }
        guard let pid else { throw ConformanceFailure("no child pid: \(holder.printed)") }
        let line = try await ctx.store.line.contenders(in: name)
        guard line.count == 1, let session = line[0].session else {
            throw ConformanceFailure("the lock's line is \(line), not one holder with a session")
        }
        try await ctx.store.revokeSession(session)
        try expectEqual(try await holder.waitForExit(within: ctx.expiryDeadline + .seconds(10)), 3, "the exit status")
        try expect(holder.printed.contains("lost"), "coordctl did not say the lock was lost: \(holder.printed)")
        try expect(kill(pid, 0) != 0, "the command (pid \(pid)) still runs after the lock was lost")
    }

    static let lockPassesSignalsOn = check(
        "SIGTERM to coordctl lock reaches the command; the lock is released; a waiter interrupted leaves no key"
    ) { ctx in
        let name = try ctx.key("locks/signalled")
        let holder = try start(
            ctx,
            [
                "lock", name.path, "--", "sh", "-c",
                "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done",
            ])
        defer { holder.kill() }
        try await holder.waitForOutput("ready")
        // A second coordctl waits behind it, and is interrupted while waiting.
        let waiter = try start(ctx, ["lock", name.path, "--", "true"])
        defer { waiter.kill() }
        try await withDeadline(.seconds(30), "the waiter to queue") {
            while try await ctx.store.line.contenders(in: name).count < 2 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        waiter.interrupt()
        try expectEqual(try await waiter.waitForExit(), 130, "the interrupted waiter's exit status")
        try expectEqual(try await ctx.store.line.contenders(in: name).count, 1, "contenders after the waiter left")
        holder.terminate()
        try expectEqual(try await holder.waitForExit(), 5, "the exit status (the command's, after its TERM trap)")
        try expect(holder.printed.contains("got-term"), "the command did not get SIGTERM: \(holder.printed)")
        let left = try await ctx.store.line.contenders(in: name)
        try expect(left.isEmpty, "the lock still has contenders: \(left)")
    }

    static let electAndObserve = check("elect leads until SIGTERM, then resigns; elect --observe follows it") { ctx in
        let name = try ctx.key("elections/scheduler")
        let election = Election(name, store: ctx.store)
        let observer = try start(ctx, ["elect", "--observe", name.path])
        defer { observer.kill() }
        try await observer.waitForOutput("-")
        let candidate = try start(ctx, ["elect", name.path, "node-a"])
        defer { candidate.kill() }
        try await candidate.waitForOutput("leader ")
        try expectEqual(try await election.leader()?.stringValue, "node-a", "the leader's value")
        try await observer.waitForOutput("node-a ")
        candidate.terminate()
        try expectEqual(try await candidate.waitForExit(), 0, "elect's exit status on SIGTERM")
        try expect(try await election.leader() == nil, "a leader is left after elect resigned")
        try await withDeadline(.seconds(30), "the observer to print that nobody leads") {
            while observer.printed.split(separator: "\n").last != "-" {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        observer.interrupt()
        try expectEqual(try await observer.waitForExit(), 0, "elect --observe's exit status on SIGINT")
    }

    static let registerAndDiscover = check(
        "register keeps an instance listed until SIGTERM; discover and discover --watch see it come and go"
    ) { ctx in
        let base = try ctx.key("services")
        let discovery = ServiceDiscovery(base: base, store: ctx.store)
        let watcher = try start(ctx, ["discover", "--base", base.path, "--watch", "api"])
        defer { watcher.kill() }
        let registration = try start(
            ctx, ["register", "--base", base.path, "--meta", "zone=a", "api", "api-1", "127.0.0.1:8080"])
        defer { registration.kill() }
        try await registration.waitForOutput("registered api/api-1")
        let instances = try await discovery.instances(of: "api")
        try expectEqual(instances.map(\.id), ["api-1"], "the instances the library sees")
        try expectEqual(instances.first?.port, 8080, "the port")
        try expectEqual(instances.first?.metadata["zone"], "a", "the metadata")
        try expectEqual(
            try await run(ctx, ["discover", "--base", base.path, "api"], expecting: 0), "api-1 127.0.0.1:8080\n",
            "discover")
        try await watcher.waitForOutput("api-1 127.0.0.1:8080")
        registration.terminate()
        try expectEqual(try await registration.waitForExit(), 0, "register's exit status on SIGTERM")
        try await watcher.waitForOutput("- api-1")
        try expect(try await discovery.instances(of: "api").isEmpty, "still registered after register stopped")
        watcher.terminate()
        try expectEqual(try await watcher.waitForExit(), 0, "discover --watch's exit status on SIGTERM")
    }

    static let sessionList = check(
        "session ls lists another client's session where the store can list sessions, and says it cannot elsewhere"
    ) { ctx in
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 5)
        defer { Task { try? await session.close() } }
        guard ctx.store is any SessionListingStore else {
            let refused = try await run(ctx, ["session", "ls"], expecting: 1)
            try expect(refused.contains("cannot list sessions"), "session ls where it cannot: \(refused)")
            return
        }
        let listed = try await run(ctx, ["session", "ls"], expecting: 0)
        try expect(
            listed.split(separator: "\n").contains { $0.hasPrefix(session.id.rawValue + " ") },
            "session ls does not list \(session.id): \(listed)")
    }

    static let sessionRevoke = check("session revoke ends another client's session: its keys go") { ctx in
        let session = try await ctx.store.makeSession(ttl: ctx.sessionTTL * 5)
        let key = try ctx.key("ephemeral")
        try await ctx.store.put(key, Array("x".utf8), options: PutOptions(session: session))
        try await run(ctx, ["session", "revoke", session.id.rawValue], expecting: 0)
        try await withDeadline(.seconds(30), "the session's key to go") {
            while try await ctx.store.get(key) != nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        try? await session.close()
    }

    static let usageAndStoreErrors = check("usage errors exit 64, store errors exit 1, each with a message") { ctx in
        let url = try store(ctx)
        let scheme = String(url.prefix(while: { $0 != ":" }))
        let tool = try BuiltExecutable.path("coordctl", override: "COORDCTL")
        func bare(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
            let process = try PeerProcess(
                name: "coordctl", executable: tool, arguments: arguments,
                environment: environment.merging(["COORD_STORE": ""]) { new, _ in new })
            defer { process.kill() }
            return (try await process.waitForExit(within: .seconds(45)), process.printed)
        }
        let (noStore, noStoreText) = try await bare(["get", "k"])
        try expect(noStore == 64 && noStoreText.contains("COORD_STORE"), "no store: \(noStore) \(noStoreText)")
        let (fromEnvironment, _) = try await bare(
            ["get", try ctx.key("absent").path], environment: ["COORD_STORE": url])
        try expectEqual(fromEnvironment, 2, "get of an absent key with the store from COORD_STORE")
        let (badKey, badKeyText) = try await bare(["--store", url, "get", "a//b"])
        try expect(badKey == 64 && badKeyText.contains("key"), "an invalid key: \(badKey) \(badKeyText)")
        let (badOption, badOptionText) = try await bare(["--store", "\(scheme)://127.0.0.1:1?timout=5s", "get", "k"])
        try expect(
            badOption == 64 && badOptionText.contains("timout"), "an unknown option: \(badOption) \(badOptionText)")
        let (refused, refusedText) = try await bare(["--store", "\(scheme)://127.0.0.1:1", "get", "k"])
        try expect(
            refused == 1 && refusedText.contains("refused"), "an unreachable store: \(refused) \(refusedText)")
    }
}
