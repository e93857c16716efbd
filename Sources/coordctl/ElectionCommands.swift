import ArgumentParser
import Coordination

struct Elect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Campaign for leadership with a value and lead until interrupted; or --observe who leads.",
        discussion: """
            Campaigning prints 'leader <term>' once elected and holds leadership until SIGINT or
            SIGTERM, then resigns; it exits 3 if leadership is lost before. --observe prints the
            leader's value and term ('<value> <term>', or '-' while nobody leads) now and at every
            change, as 'etcdctl elect -l' does.
            """)

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The election's name, e.g. elections/scheduler.") var name: KeyArgument
    @Argument(help: "The value to proclaim while leading (an address, an id).") var value: String?
    @Flag(help: "Follow who leads instead of campaigning.") var observe = false
    @Option(
        help: ArgumentHelp(
            "The session's TTL: "
                + "how long a crash of this process keeps the leadership (default: the store's, 10s on most)."))
    var ttl: DurationArgument?
    @Option(help: "Give up campaigning after this long (exit 2).") var timeout: DurationArgument?

    func validate() throws {
        if observe, value != nil { throw ValidationError("--observe takes no value") }
        if !observe, value == nil { throw ValidationError("campaigning needs a value (or pass --observe)") }
    }

    func run() async throws {
        let lost: Bool = try await options.withStore { store in
            let election = Election(name.key, store: store)
            if observe {
                let leaders = try await election.observe()
                _ = try await Interruption.run {
                    for try await leader in leaders {
                        Diagnostics.printLine(leader.map { "\($0.stringValue) \($0.term)" } ?? "-")
                    }
                }
                return false
            }
            let session = try await store.makeSession(ttl: ttl?.duration ?? store.limits.defaultSessionTTL)
            let value = Array((self.value ?? "").utf8)
            let timeout = self.timeout?.duration
            let leadership: Leadership?
            do {
                leadership = try await Progress("campaigning in '\(name.key)'").whileRunning {
                    try await Interruption.run {
                        if let timeout {
                            return try await election.campaign(value: value, session: session, timeout: timeout)
                        }
                        return try await election.campaign(value: value, session: session)
                    }
                }
            } catch let error as CoordinationError where error.code == .timeout {
                try? await session.close()
                Diagnostics.say("not elected within \(timeout ?? .zero)")
                throw Diagnostics.notFound
            }
            guard let leadership else {
                try? await session.close()
                return false
            }
            Diagnostics.printLine("leader \(leadership.term)")
            let lostFirst = try await Interruption.run { () async -> Bool in
                if let reason = await leadership.lost() { Diagnostics.say("lost the leadership: \(reason.message)") }
                return true
            }
            if lostFirst == nil {
                do {
                    try await leadership.resign()
                } catch {
                    Diagnostics.say(
                        "could not confirm the resignation: \(error); the session ends, and the key with it")
                }
            }
            try? await session.close()
            return lostFirst != nil
        }
        if lost { throw Diagnostics.lockLost }
    }
}
