import ArgumentParser
import Coordination
import ServiceLifecycle

struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register a service instance and keep it registered (TTL heartbeat) until interrupted.")

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The service's name.") var service: String
    @Argument(help: "This instance's id.") var id: String
    @Argument(help: "Where it is reached: host:port.") var address: String
    @Option(help: "The key under which services are registered.") var base = KeyArgument(argument: "services")!
    @Option(name: .customLong("meta"), help: "Metadata, key=value (repeatable).") var metadata: [String] = []
    @Option(
        help: ArgumentHelp(
            "The registration's TTL: "
                + "how long a crash of this process leaves it listed (default: the store's, 10s on most)."))
    var ttl: DurationArgument?

    func run() async throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw ValidationError("the address must be host:port, not '\(address)'")
        }
        var pairs: [String: String] = [:]
        for item in metadata {
            guard let equals = item.firstIndex(of: "=") else {
                throw ValidationError("--meta takes key=value, not '\(item)'")
            }
            pairs[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        let instance: ServiceInstance
        do {
            instance = try ServiceInstance(
                name: service, id: id, address: String(address[..<colon]), port: port, metadata: pairs)
        } catch {
            throw ValidationError(error.message)
        }
        try await options.withStore { store in
            let registration = ServiceRegistration(
                instance, base: base.key, store: store, sessionTTL: ttl?.duration, logger: Diagnostics.logger)
            _ = try await Interruption.run {
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { try await registration.run() }
                    for await status in registration.statuses() {
                        switch status {
                        case .registered: Diagnostics.printLine("registered \(instance.name)/\(instance.id)")
                        case .reregistering: Diagnostics.say("registration lost; registering again")
                        case .idle, .stopped: break
                        }
                    }
                }
            }
        }
    }
}

struct Discover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the registered instances of a service; with --watch, then every change.",
        discussion:
            "Lines: '<id> <host>:<port>' per instance; with --watch, '+ <id> <host>:<port>', '~ …' (updated) and '- <id>'."
    )

    @OptionGroup var local: StoreOptions
    @ParentCommand var root: Coordctl
    var options: StoreOptions { local.merged(over: root.global) }
    @Argument(help: "The service's name.") var service: String
    @Option(help: "The key under which services are registered.") var base = KeyArgument(argument: "services")!
    @Flag(help: "Keep printing changes until interrupted.") var watch = false

    func run() async throws {
        try await options.withStore { store in
            let discovery = ServiceDiscovery(base: base.key, store: store)
            guard watch else {
                for instance in try await discovery.instances(of: service) {
                    Diagnostics.printLine(Self.line(instance))
                }
                return
            }
            let events = try await discovery.watch(service)
            _ = try await Interruption.run {
                for try await event in events {
                    switch event.change {
                    case .snapshot:
                        for instance in event.instances { Diagnostics.printLine(Self.line(instance)) }
                    case .registered(let instance): Diagnostics.printLine("+ " + Self.line(instance))
                    case .updated(let instance): Diagnostics.printLine("~ " + Self.line(instance))
                    case .deregistered(let id): Diagnostics.printLine("- \(id)")
                    }
                }
            }
        }
    }

    static func line(_ instance: ServiceInstance) -> String { "\(instance.id) \(instance.address):\(instance.port)" }
}
