import CoordinationCore
import Testing

@testable import CoordinationEtcd

@Suite("EtcdKeySpace")
struct EtcdKeySpaceTests {
    let plain = EtcdKeySpace(namespace: "")
    let app = EtcdKeySpace(namespace: "/app/")

    func utf8(_ string: String) -> [UInt8] { Array(string.utf8) }

    /// Whether `bytes` lies in the etcd range [start, end).
    func contains(_ range: (start: [UInt8], end: [UInt8]), _ bytes: [UInt8]) -> Bool {
        !bytes.lexicographicallyPrecedes(range.start) && bytes.lexicographicallyPrecedes(range.end)
    }

    // MARK: - Key to bytes

    @Test("without a namespace a key is stored as its path")
    func bytesWithoutNamespace() throws {
        #expect(plain.prefix.isEmpty)
        #expect(plain.bytes(try Key("a")) == utf8("a"))
        #expect(plain.bytes(try Key("/locks/job/")) == utf8("locks/job"))
    }

    @Test(
        "a namespace is normalised to `ns/` and prefixed",
        arguments: [("/app/", "app/"), ("app", "app/"), ("app/", "app/"), ("//x//y/", "x/y/"), ("/", ""), ("", "")]
    )
    func namespaceNormalisation(namespace: String, prefix: String) throws {
        let space = EtcdKeySpace(namespace: namespace)
        #expect(space.prefix == utf8(prefix))
        #expect(space.bytes(try Key("a/b")) == utf8(prefix + "a/b"))
    }

    // MARK: - Subtree ranges

    @Test("the subtree of `a` is [`a/`, `a0`)")
    func subtreeRange() throws {
        let range = plain.subtree(try Key("a"))
        #expect(range.start == utf8("a/"))
        #expect(range.end == utf8("a0"))

        let namespaced = app.subtree(try Key("a/b"))
        #expect(namespaced.start == utf8("app/a/b/"))
        #expect(namespaced.end == utf8("app/a/b0"))
    }

    @Test("the subtree holds the descendants of a key and nothing else")
    func subtreeMembership() throws {
        for space in [plain, app] {
            let range = space.subtree(try Key("a"))
            for inside in ["a/b", "a/b/c", "a/-", "a/~"] {
                #expect(contains(range, space.bytes(try Key(inside))), "\(inside) is below a")
            }
            // The key itself, siblings that share its first byte, and keys sorting around `/`.
            for outside in ["a", "ab", "a-b", "a.b", "a0", "a0/b", "b", "A/b"] {
                #expect(!contains(range, space.bytes(try Key(outside))), "\(outside) is not below a")
            }
        }
        // Nothing from outside the namespace.
        #expect(!contains(app.subtree(try Key("a")), utf8("a/b")))
        #expect(!contains(app.subtree(try Key("a")), utf8("other/a/b")))
    }

    @Test(
        "rangeEnd increments the last byte below 0xFF, dropping trailing 0xFF bytes",
        arguments: [
            ([0x61], [0x62]),
            ([0x61, 0x2F], [0x61, 0x30]),
            ([0x61, 0xFF], [0x62]),
            ([0x61, 0xFE, 0xFF, 0xFF], [0x61, 0xFF]),
            ([0xFF], [0x00]),
            ([0xFF, 0xFF], [0x00]),
            ([], [0x00]),
        ] as [([UInt8], [UInt8])]
    )
    func rangeEnd(prefix: [UInt8], end: [UInt8]) {
        #expect(EtcdKeySpace.rangeEnd(of: prefix) == end)
    }

    @Test("rangeEnd of a prefix ending in 0xFF still bounds every key with that prefix")
    func rangeEndBoundsPrefix() {
        let prefix: [UInt8] = [0x61, 0xFF]
        let end = EtcdKeySpace.rangeEnd(of: prefix)
        for key: [UInt8] in [[0x61, 0xFF], [0x61, 0xFF, 0x00], [0x61, 0xFF, 0xFF, 0xFF]] {
            #expect(key.lexicographicallyPrecedes(end))
        }
        #expect(!([0x62] as [UInt8]).lexicographicallyPrecedes(end))
    }

    // MARK: - Bytes to key

    @Test("key(_:) inverts bytes(_:)", arguments: ["a", "a/b", "locks/job/694d8a3b2c1f0e07", "x.y~z:1@2+3=4,5-_"])
    func keyRoundTrip(path: String) throws {
        let key = try Key(path)
        for space in [plain, app, EtcdKeySpace(namespace: "x/y")] {
            #expect(space.key(space.bytes(key)) == key)
        }
    }

    @Test("key(_:) is nil outside the namespace")
    func keyOutsideNamespace() {
        for outside in ["a/b", "other/a", "app", "app/", "apple/a", "ap/p/a", "APP/a"] {
            #expect(app.key(utf8(outside)) == nil, "\(outside)")
        }
    }

    @Test("key(_:) is nil for bytes that are not a valid key (written by another tool)")
    func keyInvalid() {
        for invalid in ["a b", "a//b", "a/../b", "./a", "a/.", "é", "a\u{0}b", ""] {
            #expect(plain.key(utf8(invalid)) == nil, "\(invalid)")
            #expect(app.key(utf8("app/" + invalid)) == nil, "app/\(invalid)")
        }
        #expect(plain.key([0x61, 0xFF]) == nil)  // not UTF-8
    }

    /// Another tool may store `a/b/` or `/a` next to `a/b` and `a`. Such bytes must not be read as
    /// the key whose bytes differ from them: a list of `a` would show `a/b` twice, and reading,
    /// deleting or comparing that key addresses other bytes than the entry that was listed.
    @Test("key(_:) is nil for bytes that only normalise to a key (extra `/`)")
    func keyRejectsNonCanonicalBytes() {
        for stored in ["a/b/", "/a", "/a/b", "a/"] {
            #expect(plain.key(utf8(stored)) == nil, "\(stored)")
            #expect(app.key(utf8("app/" + stored)) == nil, "app/\(stored)")
        }
    }

    // MARK: - Session ids

    @Test(
        "a lease id is named in lowercase hex of its 64-bit pattern and round-trips",
        arguments: [
            (1, "1"),
            (0x694d_8a3b_2c1f_0e07, "694d8a3b2c1f0e07"),
            (0xABC, "abc"),
            (Int64.max, "7fffffffffffffff"),
            (-1, "ffffffffffffffff"),
            (-2, "fffffffffffffffe"),
            (-0x1234, "ffffffffffffedcc"),
            (Int64.min, "8000000000000000"),
        ] as [(Int64, String)]
    )
    func sessionIDRoundTrip(lease: Int64, hex: String) {
        let id = SessionID(leaseID: lease)
        #expect(id.rawValue == hex)
        #expect(id.leaseID == lease)
    }

    @Test("a session id that is not a lease id has no leaseID")
    func sessionIDNotALease() {
        for raw in ["", "not-a-lease", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "1ffffffffffffffff", "12 34"] {
            #expect(SessionID(raw).leaseID == nil, "\(raw)")
        }
    }
}
