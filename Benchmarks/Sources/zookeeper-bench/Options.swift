import BenchSupport
import CoordinationCore

/// The flags of ../../kazoo_bench.py, with its defaults and its checks (durations in seconds:
/// `2`, `1.5` or `2s`).
struct Options: Sendable {
    /// The ensemble, loopback only: `--hosts 127.0.0.1:2181[,…][/chroot]`.
    var endpoints: [(host: String, port: Int)]
    var chroot = ""
    /// The base znode of the locks (`--prefix /bench/swift`), as a key: `bench/swift`.
    var prefix: Key
    var warmupCycles = 300
    var cycles = 3000
    var contenders = 16
    var contendedWarmup: Duration = .seconds(2)
    var contendedDuration: Duration = .seconds(10)
    /// Where `srvr` is asked: the first host, on `--four-letter-port` (default: its client port).
    var counterHost: String
    var fourLetterPort: Int
    var workloads: [String] = Workload.allCases.map(\.rawValue)

    /// The timeout of each store's own session (reads, watches, releases), and the TTL of the
    /// session a contender's znodes belong to.
    var storeSessionTimeout: Duration = .seconds(10)
    var sessionTTL: Duration = .seconds(30)

    enum Workload: String, CaseIterable {
        case uncontended, contended
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var values = try Arguments(arguments)
        guard let hosts = values.string("hosts") else {
            throw Arguments.Invalid("--hosts host:port is required")
        }
        let (endpoints, chroot) = try parseHosts(hosts)

        let prefixText = values.string("prefix") ?? "/bench/swift"
        guard prefixText.hasPrefix("/"), !prefixText.hasSuffix("/"),
            let prefix = try? Key(String(prefixText.dropFirst())), "/" + prefix.path == prefixText
        else {
            throw Arguments.Invalid(
                "--prefix must be an absolute znode path without a trailing slash, got '\(prefixText)'")
        }

        var options = Options(
            endpoints: endpoints, chroot: chroot, prefix: prefix,
            counterHost: endpoints[0].host, fourLetterPort: endpoints[0].port)
        if let value = try values.count("warmup-cycles") { options.warmupCycles = value }
        if let value = try values.count("cycles", minimum: 1) { options.cycles = value }
        if let value = try values.count("contenders", minimum: 1) { options.contenders = value }
        if let value = try values.duration("contended-warmup") { options.contendedWarmup = value }
        if let value = try values.duration("contended-duration") { options.contendedDuration = value }
        guard options.contendedDuration > .zero else {
            throw Arguments.Invalid("--contended-duration must be positive")
        }
        if let value = try values.count("four-letter-port", minimum: 1) { options.fourLetterPort = value }
        if let text = values.string("workloads") {
            options.workloads = text.split(separator: ",").map(String.init).filter { $0 != "none" }
            let unknown = options.workloads.filter { Workload(rawValue: $0) == nil }
            guard unknown.isEmpty else {
                throw Arguments.Invalid("unknown workloads: \(unknown.sorted().joined(separator: ", "))")
            }
        }
        try values.finish()
        return options
    }

    /// `h1:p1,h2:p2/chroot`: every host on loopback (127.x.x.x).
    private static func parseHosts(_ text: String) throws -> ([(host: String, port: Int)], String) {
        let slash = text.firstIndex(of: "/")
        let chroot = slash.map { String(text[$0...]) } ?? ""
        var endpoints: [(host: String, port: Int)] = []
        for member in text[..<(slash ?? text.endIndex)].split(separator: ",") {
            guard let colon = member.lastIndex(of: ":"), let port = Int(member[member.index(after: colon)...]),
                (1...65535).contains(port), colon > member.startIndex
            else {
                throw Arguments.Invalid("--hosts must be host:port, got '\(text)'")
            }
            let host = String(member[..<colon])
            guard host.hasPrefix("127.") else {
                throw Arguments.Invalid("only loopback hosts (127.x.x.x) are allowed, got '\(host)'")
            }
            endpoints.append((host, port))
        }
        guard !endpoints.isEmpty else { throw Arguments.Invalid("--hosts must be host:port, got '\(text)'") }
        return (endpoints, chroot)
    }
}
