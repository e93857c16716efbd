@_spi(Backend) import CoordinationCore

/// Maps the core's keys onto etcd's flat byte keys under an optional namespace.
///
/// A key `a/b` is stored as the bytes `a/b` (or `ns/a/b` with namespace `ns`), so the layouts of
/// etcd's own tools line up: `etcdctl lock NAME` queues under `NAME/`, exactly where a ``Lock`` named
/// `NAME` queues. A subtree `a` is the byte range [`a/`, `a0`) — `0` being the byte after `/`.
struct EtcdKeySpace: Sendable {
    /// `namespace/` or empty.
    let prefix: [UInt8]

    init(namespace: String) {
        let trimmed = namespace.split(separator: "/").joined(separator: "/")
        self.prefix = trimmed.isEmpty ? [] : Array((trimmed + "/").utf8)
    }

    func bytes(_ key: Key) -> [UInt8] {
        prefix + Array(key.path.utf8)
    }

    /// The byte range of everything strictly below `key`.
    func subtree(_ key: Key) -> (start: [UInt8], end: [UInt8]) {
        let start = bytes(key) + [UInt8(ascii: "/")]
        return (start, Self.rangeEnd(of: start))
    }

    /// The key for stored bytes, or `nil` when they lie outside the namespace or are not exactly a
    /// valid key under the core's rules (written by another tool: `/a/b` or `a//b` must not alias `a/b`).
    func key(_ bytes: some Collection<UInt8>) -> Key? {
        guard bytes.starts(with: prefix) else { return nil }
        let text = String(decoding: bytes.dropFirst(prefix.count), as: UTF8.self)
        guard let key = try? Key(text), key.path == text else { return nil }
        return key
    }

    /// The smallest key greater than every key that starts with `prefix` (etcd's prefix range end).
    static func rangeEnd(of prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]  // every key
    }
}

extension SessionID {
    /// An etcd lease id in the lowercase hex etcd's concurrency package uses in key names.
    init(leaseID: Int64) {
        self.init(String(UInt64(bitPattern: leaseID), radix: 16))
    }

    /// The lease id this session id names, if it is one.
    var leaseID: Int64? {
        UInt64(rawValue, radix: 16).map { Int64(bitPattern: $0) }
    }
}
