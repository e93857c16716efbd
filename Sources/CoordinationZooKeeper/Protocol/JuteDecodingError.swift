/// Why bytes from a ZooKeeper server could not be decoded. The connection that received them is
/// unusable afterwards (the stream is out of step), so every case ends it with a protocol error.
struct JuteDecodingError: Error, Equatable, Sendable {
    enum Reason: Equatable, Sendable {
        /// The record needs more bytes than its frame holds.
        case truncated(needed: Int, available: Int)
        /// A length prefix below -1 (-1 means "null" in jute).
        case negativeLength(Int32)
        /// A frame or field longer than the configured limit.
        case tooLong(Int, limit: Int)
        /// A string that is not UTF-8.
        case invalidUTF8
        /// A value outside what the protocol defines (for example an unknown multi op type).
        case unexpectedValue(String)
    }

    let reason: Reason

    static func truncated(needed: Int, available: Int) -> Self {
        .init(reason: .truncated(needed: needed, available: available))
    }
    static func negativeLength(_ length: Int32) -> Self { .init(reason: .negativeLength(length)) }
    static func tooLong(_ length: Int, limit: Int) -> Self { .init(reason: .tooLong(length, limit: limit)) }
    static let invalidUTF8 = Self(reason: .invalidUTF8)
    static func unexpectedValue(_ what: String) -> Self { .init(reason: .unexpectedValue(what)) }
}
