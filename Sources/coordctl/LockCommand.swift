import ArgumentParser
import Coordination
import UnixSignals

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Run a command while holding a lock, as 'etcdctl lock' and 'consul lock' do.",
        discussion: """
            Waits for the lock, then runs the command with COORD_FENCING_TOKEN (the grant's fencing
            token) and COORD_LOCK_KEY in its environment, releases the lock when it exits, and exits
            with its status. If the lock is lost meanwhile (the session expired, an operator removed
            the key), the command is sent SIGTERM, then SIGKILL after --kill-after, and coordctl
            exits 3. SIGINT or SIGTERM to coordctl is passed on to the command. Without a command,
            holds the lock and prints its token until interrupted.
            """)

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The lock's name, e.g. locks/nightly-report.") var name: KeyArgument
    @Argument(parsing: .postTerminator, help: "The command to run (after --).") var command: [String] = []
    @Option(
        help: ArgumentHelp(
            "The session's TTL: "
                + "how long a crash of this process keeps the lock (default: the store's, 10s on most)."))
    var ttl: DurationArgument?
    @Option(help: "Give up waiting after this long (exit 2).") var timeout: DurationArgument?
    @Flag(help: "Take the lock only if it is free now (exit 2 if not).") var noWait = false
    @Option(help: "How long the command has to exit after SIGTERM when the lock is lost.") var killAfter =
        DurationArgument(argument: "5s")!

    func run() async throws {
        let status: Int32 = try await options.withStore { store in
            let session = try await store.makeSession(ttl: ttl?.duration ?? store.limits.defaultSessionTTL)
            let lock = Lock(name.key, session: session, store: store)
            let grant: LockGrant
            do {
                if noWait {
                    guard let taken = try await lock.tryAcquire() else {
                        Diagnostics.say("'\(name.key)' is held by another")
                        throw Diagnostics.notFound
                    }
                    grant = taken
                } else {
                    let timeout = self.timeout?.duration
                    let taken = try await Progress("waiting for the lock '\(name.key)'").whileRunning {
                        try await Interruption.run {
                            if let timeout { return try await lock.acquire(timeout: timeout) }
                            return try await lock.acquire()
                        }
                    }
                    guard let taken else {
                        // Cancelled: the wait removed its contender key.
                        Diagnostics.say("interrupted while waiting for '\(name.key)'")
                        try? await session.close()
                        return 130
                    }
                    grant = taken
                }
            } catch let error as CoordinationError where error.code == .timeout {
                Diagnostics.say("'\(name.key)' was not granted within \(timeout?.duration ?? .zero)")
                throw Diagnostics.notFound
            }
            let status = try await hold(grant)
            do {
                try await grant.release()
            } catch {
                Diagnostics.say("could not confirm the release: \(error); the session ends, and the key with it")
            }
            try? await session.close()
            return status
        }
        if status == Diagnostics.lockLost.rawValue { throw Diagnostics.lockLost }
        throw ExitCode(status)
    }

    /// Runs the command (or waits for a signal) while the grant holds; its exit status, or 3 when
    /// the lock was lost first.
    private func hold(_ grant: LockGrant) async throws -> Int32 {
        guard !command.isEmpty else {
            Diagnostics.printLine("holding '\(name.key)' with token \(grant.token)")
            let name = self.name.key
            let lost = try await Interruption.run {
                if let reason = await grant.lost() { Diagnostics.say("lost '\(name)': \(reason.message)") }
            }
            return lost == nil ? 0 : Diagnostics.lockLost.rawValue
        }
        let child = try ChildProcess(
            command, environment: ["COORD_FENCING_TOKEN": "\(grant.token)", "COORD_LOCK_KEY": grant.key.path])
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        enum Event: Sendable {
            case exited(Int32)
            case lost(String)
            case signal(UnixSignal)
        }
        let first: Event = await withTaskGroup(of: Event?.self) { group in
            group.addTask { await child.exitStatusUnlessCancelled().map { .exited($0) } }
            group.addTask { await grant.lost().map { .lost($0.message) } ?? .lost("the lock was released") }
            group.addTask {
                for await signal in signals { return .signal(signal) }
                return nil
            }
            defer { group.cancelAll() }
            while let event = await group.next() {
                if let event { return event }
            }
            return .exited(await child.exitStatus())
        }
        switch first {
        case .exited(let status):
            return status
        case .lost(let reason):
            Diagnostics.say("lost '\(name.key)' (\(reason)); stopping the command")
            await child.stop(killAfter: killAfter.duration)
            return Diagnostics.lockLost.rawValue
        case .signal(let signal):
            child.signal(signal.rawValue)
            return await child.exitStatus()
        }
    }
}
