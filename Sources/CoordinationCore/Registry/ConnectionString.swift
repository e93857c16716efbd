/// A parsed connection string: `scheme://[user[:password]@]host[:port][,host[:port]…][/path][?k=v&…]`.
///
/// `memory://`, `etcd://127.0.0.1:2379,127.0.0.1:22379`, `zookeeper://h1:2181,h2:2181/chroot`,
/// `consul://127.0.0.1:8500?dc=dc1`, `etcdv2://127.0.0.1:2379`. The password never appears in
/// ``description``.
public struct ConnectionString: Sendable, Hashable, CustomStringConvertible {
    /// A host as written, with its port if one was given (``endpoints(defaultPort:)`` fills in the
    /// backend's default).
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int?

        public init(host: String, port: Int?) {
            self.host = host
            self.port = port
        }

        public var description: String {
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return port.map { "\(shownHost):\($0)" } ?? shownHost
        }
    }

    /// Lower-cased scheme, which picks the backend.
    public var scheme: String
    /// The hosts, as written.
    public var addresses: [Address]
    /// The path after the hosts, without the leading `/` (ZooKeeper's chroot, a key prefix).
    public var path: String
    public var query: [String: String]
    public var user: String?
    public var password: String?

    public init(_ string: String) throws(CoordinationError) {
        func fail(_ why: String) -> CoordinationError {
            CoordinationError(.invalidConnectionString, "invalid connection string: \(why)")
        }
        guard let schemeEnd = string.firstRange(of: "://") else {
            throw fail("expected scheme://hosts, e.g. etcd://127.0.0.1:2379")
        }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" }) else {
            throw fail("missing or malformed scheme")
        }
        self.scheme = scheme
        var rest = string[schemeEnd.upperBound...]

        var query: [String: String] = [:]
        if let mark = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: mark)...].split(separator: "&") where !pair.isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            rest = rest[..<mark]
        }
        self.query = query

        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[rest.index(after: slash)...])
            while path.hasSuffix("/") { path.removeLast() }
            rest = rest[..<slash]
        }
        self.path = path

        // Credentials: `user[:password]@`, percent-encoded where they contain `/ : @ ? #`.
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            if let colon = credentials.firstIndex(of: ":") {
                user = Self.percentDecoded(credentials[..<colon])
                password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                user = Self.percentDecoded(credentials)
                password = nil
            }
            rest = rest[rest.index(after: at)...]
            if rest.isEmpty { throw fail("credentials given but no host") }
        } else {
            user = nil
            password = nil
        }

        var addresses: [Address] = []
        for hostPort in rest.split(separator: ",", omittingEmptySubsequences: false) {
            if hostPort.isEmpty {
                if rest.isEmpty { break }
                throw fail("empty host in host list")
            }
            addresses.append(try Self.parseAddress(hostPort, fail: fail))
        }
        self.addresses = addresses
    }

    private static func parseAddress(
        _ text: Substring,
        fail: (String) -> CoordinationError
    ) throws(CoordinationError) -> Address {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("unterminated IPv6 address '\(text)'") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw fail("bad host '\(text)'")
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        guard !host.isEmpty else { throw fail("empty host") }
        let bracketed = text.hasPrefix("[")
        let hostIsValid = host.allSatisfy { character in
            guard character.isASCII else { return false }
            if character.isLetter || character.isNumber || character == "." || character == "-" || character == "_" {
                return true
            }
            return bracketed && (character == ":" || character == "%")
        }
        guard hostIsValid else {
            throw fail(
                host.contains(":") && !bracketed
                    ? "an IPv6 address needs brackets, e.g. [::1]:2379"
                    : "host '\(host)' has characters a host name cannot have"
            )
        }
        var port: Int?
        if let portText {
            // The text is not quoted: a forgotten `@` would otherwise print a password here.
            guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(portText),
                (1...65535).contains(value)
            else {
                throw fail("a port must be a number from 1 to 65535 (host '\(host)')")
            }
            port = value
        }
        return Address(host: String(host), port: port)
    }

    /// The hosts as endpoints, with `defaultPort` where none was written.
    public func endpoints(defaultPort: Int) -> [Endpoint] {
        addresses.map { Endpoint(host: $0.host, port: $0.port ?? defaultPort) }
    }

    /// `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds; `nil` for anything else.
    public static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number >= 0 else { return nil }
            return .milliseconds(Int64((number * scale * 1000).rounded()))
        }
        guard let number = Double(text), number >= 0 else { return nil }
        return .milliseconds(Int64((number * 1000).rounded()))
    }

    /// Query parameters whose values are credentials and never shown.
    static let secretQueryKeys: Set<String> = ["token", "password", "secret", "acl", "acl_token", "auth"]

    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The connection string without its password or secret query values.
    public var description: String {
        var text = scheme + "://"
        if let user { text += user + (password == nil ? "" : ":***") + "@" }
        text += addresses.map(\.description).joined(separator: ",")
        if !path.isEmpty { text += "/" + path }
        if !query.isEmpty {
            text +=
                "?"
                + query.keys.sorted().map { key in
                    Self.secretQueryKeys.contains(key.lowercased()) ? "\(key)=***" : "\(key)=\(query[key]!)"
                }.joined(separator: "&")
        }
        return text
    }
}
