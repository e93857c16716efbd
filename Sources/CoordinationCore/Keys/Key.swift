/// A validated, normalised key: a `/`-separated path.
///
/// One rule set holds for every backend, so code that works on one store works on all of them, and
/// an invalid key is a ``CoordinationError/Code/invalidKey`` error before any I/O:
///
/// - Leading and trailing `/` are dropped: `"/a/b/"` is the key `a/b`.
/// - At least one segment; no empty segments (`a//b`), no `.` or `..` segments.
/// - Segment characters: ASCII letters and digits and `- _ . ~ : @ + = ,`. These survive every
///   backend's path and URL rules unescaped (ZooKeeper paths, Consul and etcd v2 URLs, etcd bytes).
/// - At most ``maxLength`` bytes in all and ``maxDepth`` segments.
public struct Key: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest key accepted, in bytes.
    public static let maxLength = 1024
    /// The deepest key accepted, in segments.
    public static let maxDepth = 64

    /// The normalised path, without leading or trailing `/`.
    public let path: String

    /// Validates and normalises `string`.
    public init(_ string: String) throws(CoordinationError) {
        self.path = try Key.normalize(string)
    }

    private init(trusted path: String) {
        self.path = path
    }

    /// The segments of the path.
    public var segments: [Substring] { path.split(separator: "/", omittingEmptySubsequences: false) }

    /// The last segment.
    public var name: Substring {
        if let slash = path.lastIndex(of: "/") { return path[path.index(after: slash)...] }
        return path[...]
    }

    /// The parent key, or `nil` for a single-segment key.
    public var parent: Key? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return Key(trusted: String(path[..<slash]))
    }

    /// `self` followed by `child`, which may itself contain `/`.
    public func appending(_ child: String) throws(CoordinationError) -> Key {
        let childKey = try Key(child)  // rejects an empty child, which would name `self`
        return appending(childKey)
    }

    /// `self` followed by a child that is already a valid key.
    public func appending(_ child: Key) -> Key {
        Key(trusted: path + "/" + child.path)
    }

    /// Whether `self` lies strictly below `ancestor`.
    public func isDescendant(of ancestor: Key) -> Bool {
        path.utf8.count > ancestor.path.utf8.count + 1 && path.hasPrefix(ancestor.path)
            && path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: ancestor.path.utf8.count)] == UInt8(ascii: "/")
    }

    /// Whether `self` is a direct child of `parent`.
    public func isChild(of parent: Key) -> Bool {
        self.parent == parent
    }

    /// The path relative to `ancestor` (`a/b/c` relative to `a` is `b/c`); `nil` if not below it.
    public func relative(to ancestor: Key) -> Substring? {
        guard isDescendant(of: ancestor) else { return nil }
        return path.dropFirst(ancestor.path.count + 1)
    }

    public var description: String { path }

    public static func < (lhs: Key, rhs: Key) -> Bool { lhs.path < rhs.path }

    static func normalize(_ string: String) throws(CoordinationError) -> String {
        var utf8 = Substring(string).utf8[...]
        while utf8.first == UInt8(ascii: "/") { utf8 = utf8.dropFirst() }
        while utf8.last == UInt8(ascii: "/") { utf8 = utf8.dropLast() }
        func reject(_ why: String) -> CoordinationError {
            CoordinationError(.invalidKey, "invalid key: \(why)", key: String(string.prefix(200)))
        }
        if utf8.isEmpty { throw reject("a key needs at least one segment") }
        if utf8.count > maxLength { throw reject("longer than \(maxLength) bytes") }
        var depth = 1
        var segmentLength = 0
        var segmentIsDots = true
        var dots = 0
        for byte in utf8 {
            if byte == UInt8(ascii: "/") {
                if segmentLength == 0 { throw reject("empty segment ('//')") }
                if segmentIsDots && dots <= 2 { throw reject("'.' and '..' segments are not allowed") }
                depth += 1
                if depth > maxDepth { throw reject("deeper than \(maxDepth) segments") }
                segmentLength = 0
                segmentIsDots = true
                dots = 0
                continue
            }
            guard isAllowed(byte) else {
                let shown =
                    byte >= 0x20 && byte < 0x7F
                    ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
                throw reject("character \(shown) is not allowed (use ASCII letters, digits and - _ . ~ : @ + = ,)")
            }
            segmentLength += 1
            if byte == UInt8(ascii: ".") { dots += 1 } else { segmentIsDots = false }
        }
        if segmentIsDots && dots <= 2 { throw reject("'.' and '..' segments are not allowed") }
        return String(Substring(utf8))
    }

    @inline(__always)
    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"), UInt8(ascii: ":"),
            UInt8(ascii: "@"), UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: ","):
            return true
        default:
            return false
        }
    }
}
