/// The one reader of a connection string's options (`?name=value&…`) that every backend's
/// `register(in:)` uses, so that the same option reads the same way everywhere: durations as
/// `500ms`, `5s`, `1m`, `1h` (or bare seconds), flags as `true`/`false`/`1`/`0`, TLS as etcdctl's
/// flags. Any option the backend does not know is refused, naming the ones it does: a misspelt
/// `timout=1s` is an error, not a silently ignored setting.
@_spi(Backend) public struct ConnectionOptions: Sendable {
    public let connection: ConnectionString
    /// The backend, for messages.
    public let backend: String

    /// Reads `connection`'s options for `backend`; `invalidConnectionString` if it has any but
    /// `known` (the TLS options count as known when `acceptsTLS`).
    public init(_ connection: ConnectionString, backend: String, known: Set<String>, acceptsTLS: Bool = false)
        throws(CoordinationError)
    {
        self.connection = connection
        self.backend = backend
        let allowed = acceptsTLS ? known.union(Self.tlsOptions) : known
        if let unknown = connection.query.keys.sorted().first(where: { !allowed.contains($0) }) {
            let names = allowed.sorted().joined(separator: ", ")
            throw failure("does not know the option '\(unknown)' (it knows: \(names.isEmpty ? "none" : names))")
        }
    }

    /// The options a TLS connection takes: `tls=true` (the system's trust roots), or `ca=`, `cert=`,
    /// `key=` (PEM files) and `servername=`, as etcdctl's `--cacert`, `--cert`, `--key`.
    public static let tlsOptions: Set<String> = ["tls", "ca", "cert", "key", "servername"]

    /// The option `name` as text; `nil` if absent.
    public func string(_ name: String) -> String? { connection.query[name] }

    /// The option `name` as a duration (`500ms`, `5s`, `2m`, `1h`, or a bare number of seconds);
    /// `nil` if absent, `invalidConnectionString` if it is not a duration.
    public func duration(_ name: String) throws(CoordinationError) -> Duration? {
        guard let text = connection.query[name] else { return nil }
        guard let value = ConnectionString.parseDuration(text) else {
            throw failure("\(name) must be a duration such as 500ms, 5s or 1m (got '\(text)')")
        }
        return value
    }

    /// ``duration(_:)`` that must also be longer than zero (a timeout).
    public func positiveDuration(_ name: String) throws(CoordinationError) -> Duration? {
        guard let value = try duration(name) else { return nil }
        guard value > .zero else { throw failure("\(name) must be longer than zero (got '\(string(name) ?? "")')") }
        return value
    }

    /// The option `name` as a whole number greater than zero; `nil` if absent.
    public func positiveInteger(_ name: String) throws(CoordinationError) -> Int? {
        guard let text = connection.query[name] else { return nil }
        guard let value = Int(text), value > 0 else {
            throw failure("\(name) must be a whole number greater than zero (got '\(text)')")
        }
        return value
    }

    /// The option `name` as a flag (`true`, `false`, `1`, `0`); `nil` if absent.
    public func flag(_ name: String) throws(CoordinationError) -> Bool? {
        switch connection.query[name] {
        case nil: nil
        case "true", "1": true
        case "false", "0": false
        case let text?: throw failure("\(name) must be true or false (got '\(text)')")
        }
    }

    /// The TLS settings the options ask for, or `nil` for a plain connection: any of `ca`, `cert`,
    /// `key`, `servername` or `tls=true` turns TLS on; `tls=false` keeps it off.
    public func tls() throws(CoordinationError) -> TLSSettings? {
        let asked = try flag("tls")
        let files = ["ca", "cert", "key", "servername"].contains { connection.query[$0] != nil }
        if asked == false { return nil }
        guard asked == true || files else { return nil }
        if (string("cert") == nil) != (string("key") == nil) {
            throw failure("a client certificate needs both cert= and key=")
        }
        return TLSSettings(
            trustedCAFile: string("ca"), certificateFile: string("cert"), keyFile: string("key"),
            serverName: string("servername"))
    }

    /// The hosts as endpoints with `defaultPort` filled in, checked (at least one, or exactly one
    /// with `single`; each with a host and a port in 1...65535).
    public func endpoints(defaultPort: Int, single: Bool = false) throws(CoordinationError) -> [Endpoint] {
        let endpoints = connection.endpoints(defaultPort: defaultPort)
        try Endpoint.validate(endpoints, backend: backend, single: single)
        return endpoints
    }

    /// Refuses `user:password@` for a backend that takes no credentials.
    public func refuseCredentials() throws(CoordinationError) {
        if connection.user != nil || connection.password != nil {
            throw failure("does not take credentials in the connection string")
        }
    }

    private func failure(_ message: String) -> CoordinationError {
        CoordinationError(.invalidConnectionString, "\(backend)://: \(message)", backend: backend)
    }
}
