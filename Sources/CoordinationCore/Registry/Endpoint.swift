/// A server to talk to: a host name or IP address, and a port. Every backend's `Configuration`
/// names its servers with it.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 address in brackets (`[::1]:2379`).
    public var description: String { "\(hostForURL):\(port)" }

    /// The host as a URL needs it: an IPv6 address in brackets.
    private var hostForURL: String { host.contains(":") ? "[\(host)]" : host }
}

extension Endpoint {
    /// Checks that there is at least one endpoint (exactly one with `single`), each with a host and
    /// a port in 1...65535: `invalidConnectionString`, naming `backend`, before any I/O.
    @_spi(Backend) public static func validate(
        _ endpoints: [Endpoint], backend: String, single: Bool = false
    ) throws(CoordinationError) {
        let problem: String? =
            if endpoints.isEmpty {
                "needs \(single ? "a server" : "at least one server") (host:port)"
            } else if single && endpoints.count > 1 {
                "takes exactly one server (host:port), got \(endpoints.count)"
            } else if let bad = endpoints.first(where: { !$0.hasValidHost || !(1...65_535).contains($0.port) }) {
                "needs a host and a port between 1 and 65535, got '\(bad)'"
            } else {
                nil
            }
        if let problem {
            throw CoordinationError(
                .invalidConnectionString, "\(backend) \(problem)", backend: backend,
                endpoint: endpoints.map(\.description).joined(separator: ","))
        }
    }

    private var hasValidHost: Bool {
        !host.isEmpty && !host.contains { $0.isWhitespace || $0 == "/" || $0 == "@" || $0 == "?" || $0 == "#" }
    }
}
