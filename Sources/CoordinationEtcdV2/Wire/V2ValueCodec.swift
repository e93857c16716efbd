#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// How values are stored as v2 strings.
///
/// etcd v2 keeps values as JSON strings, so bytes that are not UTF-8 would not survive, and it has
/// no field that names an owner. A value that is valid UTF-8, not bound to a session and does not
/// start with U+0001 is stored as it is — exactly what libkv and `etcdctl` write and read. Anything
/// else is stored in an envelope: `U+0001 "coordination/1" U+0001 <session id> U+0001 <base64>`
/// (the session id empty when unbound). A value that begins with U+0001 is always an envelope, so
/// reading is unambiguous.
enum V2ValueCodec {
    static let marker = "\u{1}coordination/1\u{1}"

    static func encode(_ value: [UInt8], session: String?) -> String {
        if session == nil, value.first != 0x01, let text = String(validating: value, as: UTF8.self) {
            return text
        }
        return marker + (session ?? "") + "\u{1}" + Data(value).base64EncodedString()
    }

    static func decode(_ stored: String) -> (value: [UInt8], session: String?) {
        guard stored.hasPrefix(marker) else { return (Array(stored.utf8), nil) }
        let rest = stored.dropFirst(marker.count)
        guard let separator = rest.firstIndex(of: "\u{1}") else { return (Array(stored.utf8), nil) }
        let session = String(rest[..<separator])
        guard let data = Data(base64Encoded: String(rest[rest.index(after: separator)...])) else {
            return (Array(stored.utf8), nil)
        }
        return (Array(data), session.isEmpty ? nil : session)
    }
}
