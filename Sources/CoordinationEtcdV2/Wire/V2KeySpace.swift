@_spi(Backend) import CoordinationCore

/// Maps keys to v2 paths under an optional namespace, and back.
struct V2KeySpace: Sendable {
    /// The namespace without leading or trailing slashes (empty: none).
    let namespace: String
    /// Where session records live, relative to the namespace.
    let sessionsDirectory = "_coordination/sessions"

    init(namespace: String) {
        self.namespace = namespace.split(separator: "/").joined(separator: "/")
    }

    /// The node path of `key` (`/ns/a/b`).
    func path(_ key: Key) -> String {
        namespace.isEmpty ? "/" + key.path : "/" + namespace + "/" + key.path
    }

    /// The key a node path names, or `nil` for the namespace itself or anything outside it.
    func key(_ nodePath: String) -> Key? {
        var relative = Substring(nodePath)
        while relative.first == "/" { relative = relative.dropFirst() }
        if !namespace.isEmpty {
            guard relative.hasPrefix(namespace + "/") else { return nil }
            relative = relative.dropFirst(namespace.count + 1)
        }
        return try? Key(String(relative))
    }

    /// The directory that records a session and the keys bound to it.
    func sessionPath(_ id: SessionID) -> String {
        (namespace.isEmpty ? "/" : "/" + namespace + "/") + sessionsDirectory + "/" + id.rawValue
    }

    /// The record of one bound key inside its session's directory: the key path in hex, one segment.
    func boundKeyRecordPath(_ id: SessionID, _ key: Key) -> String {
        sessionPath(id) + "/"
            + key.path.utf8.map { byte in
                let hex = String(byte, radix: 16)
                return hex.count == 1 ? "0" + hex : hex
            }.joined()
    }

    /// `application/x-www-form-urlencoded` / query component encoding.
    static func percentEncode(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
