@_spi(Backend) import CoordinationCore

/// Where keys, session markers and contenders live in the znode tree.
///
/// - A key `a/b` is the znode `<chroot>/a/b`. Parents a key needs are created as persistent znodes
///   with *null* data (jute length -1): such a znode is a parent only, not a key — `get` says `nil`
///   and `list` leaves it out — which keeps the core's flat-key semantics (etcd's) on ZooKeeper's
///   tree. A znode with data, even empty data, is a key; so is every znode another client made.
/// - Each session of this library has a marker `<chroot>/#sessions/<session id hex>` (ephemeral).
///   `#` cannot occur in a key, so no key reaches it. Revoking a session from another client sets
///   the marker's data; its owner closes the session when it sees that.
/// - Contenders are Curator's protected sequential names: `<prefix>/_c_<uuid>-<role>-<sequence>`,
///   ordered by the 10-digit sequence the server appends (compared as a number).
struct ZooKeeperPaths: Sendable {
    /// The chroot, normalised: `""` for the root, else `/a/b`.
    let chroot: String

    init(chroot: String) throws(CoordinationError) {
        let trimmed = chroot.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        if trimmed.isEmpty {
            self.chroot = ""
        } else {
            guard (try? Key(trimmed))?.path == trimmed else {
                throw CoordinationError(
                    .invalidConnectionString, "the chroot '\(chroot)' is not a valid path", backend: "zookeeper")
            }
            self.chroot = "/" + trimmed
        }
    }

    /// The znode of `key`. With the root as chroot, a key under `zookeeper` would be ZooKeeper's own
    /// subtree (quotas, the ensemble's configuration), which the server lets clients write: such a
    /// key is refused with `invalidKey` before any I/O.
    func path(_ key: Key) throws(CoordinationError) -> String {
        if chroot.isEmpty, key.segments.first == "zookeeper" {
            throw CoordinationError(
                .invalidKey,
                "'\(key)' would be inside ZooKeeper's own /zookeeper subtree; use another name or a chroot",
                key: key.path, backend: "zookeeper")
        }
        return chroot + "/" + key.path
    }

    /// The key of a znode path under the chroot, or `nil` for the chroot itself, reserved names
    /// and paths outside it.
    func key(_ path: String) -> Key? {
        guard path.hasPrefix(chroot + "/") else { return nil }
        let relative = path.dropFirst(chroot.count + 1)
        guard !relative.isEmpty, let key = try? Key(String(relative)), key.path == relative else { return nil }
        return key
    }

    var sessionsPath: String { chroot + "/#sessions" }

    func sessionMarker(_ id: SessionID) -> String { sessionsPath + "/" + id.rawValue }

    /// Every ancestor of `path` below the root, outermost first (the chroot's own included).
    func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var index = path.startIndex
        while let slash = path[path.index(after: index)...].firstIndex(of: "/") {
            result.append(String(path[..<slash]))
            index = slash
        }
        return result
    }

    /// The name prefix of a protected contender: `_c_<uuid>-<role>-`.
    static func contenderPrefix(uuid: String, role: ContenderRole) -> String { "_c_\(uuid)-\(role.name)-" }

    /// The sequence number of a contender name: the digits ZooKeeper appended (Curator's
    /// `_c_<uuid>-lock-0000000007`, kazoo's `<uuid>__lock__0000000007`), or `nil` if `name` has none.
    /// Reads bytes, not characters: a waiter parses every name of the line on each wake-up.
    static func sequence(of name: Substring) -> Int64? {
        let bytes = name.utf8
        var start = bytes.endIndex
        while start > bytes.startIndex {
            let previous = bytes.index(before: start)
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[previous]) else { break }
            start = previous
        }
        guard bytes.distance(from: start, to: bytes.endIndex) >= 10, start > bytes.startIndex else { return nil }
        let marker = bytes[bytes.index(before: start)]
        guard marker == UInt8(ascii: "-") || marker == UInt8(ascii: "_") else { return nil }
        var value: Int64 = 0
        for byte in bytes[start...] {
            let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowedAgain) = shifted.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if overflowed || overflowedAgain { return nil }
            value = sum
        }
        return value
    }

    /// Formats a ZooKeeper session id as the core's session id: 16 lowercase hex digits.
    static func sessionID(_ raw: Int64) -> SessionID {
        let hex = String(UInt64(bitPattern: raw), radix: 16)
        return SessionID(String(repeating: "0", count: max(0, 16 - hex.count)) + hex)
    }

    /// The session owning an ephemeral znode, or `nil` for persistent ones, containers
    /// (owner 0x8000000000000000) and TTL nodes (high byte 0xff).
    static func owner(_ ephemeralOwner: Int64) -> SessionID? {
        guard ephemeralOwner != 0, ephemeralOwner != .min, UInt64(bitPattern: ephemeralOwner) >> 56 != 0xff else {
            return nil
        }
        return sessionID(ephemeralOwner)
    }
}
