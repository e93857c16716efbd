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

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ arguments: [String], environment endpoint: String?) throws -> Options {
        var endpointText = endpoint ?? ""
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let name = arguments[index]
            guard name.hasPrefix("--"), index + 1 < arguments.count else {
                throw Invalid(description: "expected --name value, got '\(name)'")
            }
            values[String(name.dropFirst(2))] = arguments[index + 1]
            index += 2
        }
        if let text = values.removeValue(forKey: "endpoint") { endpointText = text }
        guard let colon = endpointText.lastIndex(of: ":"),
              let port = Int(endpointText[endpointText.index(after: colon)...])
        else {
            throw Invalid(description: "give --endpoint host:port or set ETCD_ENDPOINT")
        }
        let host = String(endpointText[..<colon])
        guard host.hasPrefix("127.") else {
            throw Invalid(description: "only loopback endpoints (127.x.x.x) are allowed, got '\(host)'")
        }
        var options = Options(endpoint: (host, port))
        for (name, text) in values {
            switch name {
            case "prefix": options.prefix = text
            case "warmup-cycles": options.warmupCycles = try count(name, text)
            case "cycles": options.cycles = try count(name, text)
            case "contenders": options.contenders = try count(name, text)
            case "contended-warmup": options.contendedWarmup = try duration(name, text)
            case "contended-duration": options.contendedDuration = try duration(name, text)
            case "leader-warmup": options.leaderWarmup = try count(name, text)
            case "leader-rounds": options.leaderRounds = try count(name, text)
            case "settle": options.settle = try duration(name, text)
            case "session-ttl": options.sessionTTL = try duration(name, text)
            default: throw Invalid(description: "unknown option --\(name)")
            }
        }
        return options
    }

    private static func count(_ name: String, _ text: String) throws -> Int {
        guard let value = Int(text), value >= 0 else { throw Invalid(description: "--\(name) takes a count, got '\(text)'") }
        return value
    }

    /// `10s`, `250ms` or a number of seconds, as Go's flag package writes durations.
    private static func duration(_ name: String, _ text: String) throws -> Duration {
        let (number, scale): (Substring, Double) =
            text.hasSuffix("ms") ? (text.dropLast(2), 1e-3) : text.hasSuffix("s") ? (text.dropLast(), 1) : (Substring(text), 1)
        guard let value = Double(number), value >= 0 else {
            throw Invalid(description: "--\(name) takes a duration such as 10s or 250ms, got '\(text)'")
        }
        return .nanoseconds(Int64(value * scale * 1e9))
    }
}
