import BenchSupport

/// The benchmark's settings, from `--name value` arguments; the defaults are the figures in
/// ../../README.md. The Go peer takes the same names with one dash.
struct Options: Sendable {
    /// One etcd member, `host:port` on loopback (default: `ETCD_ENDPOINT`).
    var endpoint: (host: String, port: Int)
    var prefix = "bench/swift"
    var warmupCycles = 300
    var cycles = 3000
    var contenders = 16
    var contendedWarmup: Duration = .seconds(2)
    var contendedDuration: Duration = .seconds(10)
    var leaderWarmup = 20
    var leaderRounds = 300
    /// Pause between leader rounds, not measured (the Go peer pauses the same).
    var settle: Duration = .milliseconds(20)
    var sessionTTL: Duration = .seconds(30)
    /// The scale workload: registrations (each with its own session and watch), their TTL, how
    /// many start at once, and how long steady state is measured.
    var scaleSessions = 10_000
    var scaleTTL: Duration = .seconds(30)
    var scaleWave = 250
    var scaleSteady: Duration = .seconds(30)

    static func parse(_ arguments: [String], environment endpoint: String?) throws -> Options {
        var values = try Arguments(arguments)
        let endpointText = values.string("endpoint") ?? endpoint ?? ""
        guard let colon = endpointText.lastIndex(of: ":"),
            let port = Int(endpointText[endpointText.index(after: colon)...])
        else {
            throw Arguments.Invalid("give --endpoint host:port or set ETCD_ENDPOINT")
        }
        let host = String(endpointText[..<colon])
        guard host.hasPrefix("127.") else {
            throw Arguments.Invalid("only loopback endpoints (127.x.x.x) are allowed, got '\(host)'")
        }
        var options = Options(endpoint: (host, port))
        if let value = values.string("prefix") { options.prefix = value }
        if let value = try values.count("warmup-cycles") { options.warmupCycles = value }
        if let value = try values.count("cycles") { options.cycles = value }
        if let value = try values.count("contenders") { options.contenders = value }
        if let value = try values.duration("contended-warmup") { options.contendedWarmup = value }
        if let value = try values.duration("contended-duration") { options.contendedDuration = value }
        if let value = try values.count("leader-warmup") { options.leaderWarmup = value }
        if let value = try values.count("leader-rounds") { options.leaderRounds = value }
        if let value = try values.duration("settle") { options.settle = value }
        if let value = try values.duration("session-ttl") { options.sessionTTL = value }
        if let value = try values.count("scale-sessions") { options.scaleSessions = value }
        if let value = try values.duration("scale-ttl") { options.scaleTTL = value }
        if let value = try values.count("scale-wave") { options.scaleWave = value }
        if let value = try values.duration("scale-steady") { options.scaleSteady = value }
        try values.finish()
        return options
    }
}
