import CoordinationCore
import Testing

@Suite("Key")
struct KeyTests {
    // MARK: - Normalisation

    @Test(
        "leading and trailing slashes are dropped",
        arguments: [
            ("a", "a"),
            ("/a", "a"),
            ("a/", "a"),
            ("/a/b/", "a/b"),
            ("///a/b///", "a/b"),
            ("a/b/c", "a/b/c"),
        ]
    )
    func normalisation(input: String, expected: String) throws {
        let key = try Key(input)
        #expect(key.path == expected)
        #expect(key.description == expected)
    }

    @Test("keys that differ only in outer slashes are equal and hash alike")
    func normalisedEquality() throws {
        let a = try Key("/a/b/")
        let b = try Key("a/b")
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
    }

    @Test("every allowed character is accepted")
    func allowedCharacters() throws {
        let all = "abcxyzABCXYZ0189-_.~:@+=,"
        let key = try Key("p/\(all)")
        #expect(key.name == all[...])
        // Dots are fine as long as a segment is not exactly "." or "..".
        #expect(try Key("a/.../b").segments.count == 3)
        #expect(try Key(".hidden/x.").path == ".hidden/x.")
    }

    @Test("the length and depth limits are inclusive")
    func limitsAreInclusive() throws {
        let longest = String(repeating: "a", count: Key.maxLength)
        #expect(try Key(longest).path.utf8.count == Key.maxLength)
        // Outer slashes do not count towards the length.
        #expect(try Key("/" + longest + "/").path == longest)

        let deepest = Array(repeating: "a", count: Key.maxDepth).joined(separator: "/")
        #expect(try Key(deepest).segments.count == Key.maxDepth)
    }

    // MARK: - Rejection

    struct Rejection: Sendable, CustomTestStringConvertible {
        var input: String
        /// A fragment the message must contain so that a reader knows what was wrong.
        var mentions: String
        var testDescription: String { "\(input.debugDescription.prefix(40)) mentions \(mentions.debugDescription)" }
    }

    static let rejections: [Rejection] = [
        Rejection(input: "", mentions: "at least one segment"),
        Rejection(input: "/", mentions: "at least one segment"),
        Rejection(input: "//", mentions: "at least one segment"),
        Rejection(input: "a//b", mentions: "empty segment"),
        Rejection(input: ".", mentions: "'.' and '..'"),
        Rejection(input: "..", mentions: "'.' and '..'"),
        Rejection(input: "a/./b", mentions: "'.' and '..'"),
        Rejection(input: "a/../b", mentions: "'.' and '..'"),
        Rejection(input: "a/..", mentions: "'.' and '..'"),
        Rejection(input: "a b", mentions: "' '"),
        Rejection(input: "a#b", mentions: "'#'"),
        Rejection(input: "a?b", mentions: "'?'"),
        Rejection(input: "a%20b", mentions: "'%'"),
        Rejection(input: "a*", mentions: "'*'"),
        Rejection(input: "a\\b", mentions: "'\\'"),
        Rejection(input: "caf\u{E9}", mentions: "0xc3"),
        Rejection(input: "\u{1F600}", mentions: "0xf0"),
        Rejection(input: "a\u{0}b", mentions: "0x0"),
        Rejection(input: "a\nb", mentions: "0xa"),
        Rejection(input: "a\tb", mentions: "0x9"),
        Rejection(input: "a\u{7F}b", mentions: "0x7f"),
        Rejection(
            input: String(repeating: "a", count: Key.maxLength + 1), mentions: "longer than \(Key.maxLength) bytes"),
        Rejection(
            input: Array(repeating: "a", count: Key.maxDepth + 1).joined(separator: "/"),
            mentions: "deeper than \(Key.maxDepth) segments"
        ),
    ]

    @Test("invalid keys are rejected with invalidKey and a message naming the problem", arguments: rejections)
    func rejection(_ case: Rejection) throws {
        let error = try #require(throws: CoordinationError.self) { try Key(`case`.input) }
        #expect(error.code == .invalidKey)
        #expect(error == .invalidKey)
        #expect(error.message.contains(`case`.mentions), "message was: \(error.message)")
        #expect(error.message.contains("invalid key"))
    }

    @Test("disallowed characters are rejected in any segment")
    func disallowedCharacterInLaterSegment() {
        #expect(throws: CoordinationError.invalidKey) { try Key("ok/fine/not ok") }
    }

    @Test("a rejected key's error carries the offending input, truncated for very long input")
    func rejectionCarriesTheKey() throws {
        let error = try #require(throws: CoordinationError.self) { try Key("a//b") }
        #expect(error.key == "a//b")
        #expect(error.description.contains("a//b"))

        let huge = String(repeating: "x", count: 10_000)
        let long = try #require(throws: CoordinationError.self) { try Key(huge) }
        #expect((long.key?.count ?? 0) < 1_000)
    }

    @Test("appending validates the new part")
    func appendingValidates() throws {
        let base = try Key("a")
        // An empty child must not silently give back `base` itself (a contender named by an empty
        // id would otherwise land on its own prefix).
        #expect(throws: CoordinationError.invalidKey) { try base.appending("") }
        #expect(throws: CoordinationError.invalidKey) { try base.appending("..") }
        #expect(throws: CoordinationError.invalidKey) { try base.appending("b//c") }
        #expect(throws: CoordinationError.invalidKey) { try base.appending("b c") }
    }

    // MARK: - Structure

    @Test("segments, name and parent")
    func structure() throws {
        let key = try Key("a/b/c")
        #expect(key.segments == ["a", "b", "c"])
        #expect(key.name == "c")
        #expect(key.parent == (try Key("a/b")))
        #expect(key.parent?.parent == (try Key("a")))
        #expect(key.parent?.parent?.parent == nil)

        let single = try Key("only")
        #expect(single.segments == ["only"])
        #expect(single.name == "only")
        #expect(single.parent == nil)
    }

    @Test("appending a string or a key")
    func appending() throws {
        let base = try Key("a/b")
        #expect(try base.appending("c") == (try Key("a/b/c")))
        #expect(try base.appending("c/d") == (try Key("a/b/c/d")))
        #expect(base.appending(try Key("c/d")) == (try Key("a/b/c/d")))
        #expect(try base.appending("c").parent == base)
    }

    @Test("isDescendant means strictly below, at a segment boundary")
    func isDescendant() throws {
        let a = try Key("a")
        #expect(try Key("a/b").isDescendant(of: a))
        #expect(try Key("a/b/c").isDescendant(of: a))
        #expect(try Key("a/b/c").isDescendant(of: try Key("a/b")))
        #expect(!a.isDescendant(of: a))
        #expect(!(try Key("ab")).isDescendant(of: a))
        #expect(!(try Key("ab/c")).isDescendant(of: a))
        #expect(!(try Key("a/bc")).isDescendant(of: try Key("a/b")))
        #expect(!a.isDescendant(of: try Key("a/b")))
        #expect(!(try Key("b/a")).isDescendant(of: a))
    }

    @Test("isChild means exactly one level below")
    func isChild() throws {
        let a = try Key("a")
        #expect(try Key("a/b").isChild(of: a))
        #expect(!(try Key("a/b/c")).isChild(of: a))
        #expect(!a.isChild(of: a))
        #expect(!(try Key("ab")).isChild(of: a))
        #expect(!(try Key("ab/c")).isChild(of: a))
        #expect(try Key("a/b/c").isChild(of: try Key("a/b")))
    }

    @Test("relative path below an ancestor")
    func relative() throws {
        let a = try Key("a")
        #expect(try Key("a/b/c").relative(to: a) == "b/c")
        #expect(try Key("a/b").relative(to: a) == "b")
        #expect(try Key("a/b/c").relative(to: try Key("a/b")) == "c")
        #expect(a.relative(to: a) == nil)
        #expect(try Key("ab/c").relative(to: a) == nil)
        #expect(try Key("b").relative(to: a) == nil)
    }

    @Test("keys order by path")
    func ordering() throws {
        let keys = try ["b", "a/b", "a", "a/a"].map { try Key($0) }
        #expect(keys.sorted().map(\.path) == ["a", "a/a", "a/b", "b"])
    }
}
