#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One node of etcd's v2 keys API: a key with a value, or a directory with children.
struct V2Node: Decodable, Sendable, Equatable {
    var key: String
    var value: String?
    var dir: Bool?
    var nodes: [V2Node]?
    var createdIndex: UInt64
    var modifiedIndex: UInt64
    var ttl: Int64?

    var isDirectory: Bool { dir ?? false }

    /// Every leaf (non-directory node) at or below this node.
    var leaves: [V2Node] {
        guard isDirectory else { return [self] }
        return (nodes ?? []).flatMap(\.leaves)
    }
}

/// A successful answer: what was done, to which node, and what it replaced.
struct V2Response: Decodable, Sendable, Equatable {
    var action: String
    var node: V2Node
    var prevNode: V2Node?
}

/// The body etcd sends with a failure (`errorCode` is one of the v2 error codes).
struct V2ErrorBody: Decodable, Sendable, Equatable {
    var errorCode: Int
    var message: String
    var cause: String?
    var index: UInt64?
}

/// The error codes of the v2 keys API this client reacts to.
enum V2ErrorCode {
    static let keyNotFound = 100
    static let testFailed = 101
    static let notFile = 102
    static let notDirectory = 104
    static let nodeExists = 105
    static let rootReadOnly = 107
    static let directoryNotEmpty = 108
    static let unauthorized = 110
    static let eventIndexCleared = 401
}

/// What one request came back with: the response (or etcd's error) and the `X-Etcd-Index` header.
enum V2Reply: Sendable {
    case success(V2Response, index: UInt64)
    case failure(V2ErrorBody)

    static func decode(status: Int, etcdIndex: UInt64?, body: [UInt8]) throws -> V2Reply {
        let decoder = JSONDecoder()
        if (200..<300).contains(status) {
            let response = try decoder.decode(V2Response.self, from: Data(body))
            return .success(response, index: etcdIndex ?? response.node.modifiedIndex)
        }
        if status == 401 {
            // etcd v2's auth answers a wrong password, an unknown user and a role without access to
            // the key alike: 401 `{"message":"Insufficient credentials"}`.
            throw V2Unauthorized(message: String(decoding: body.prefix(200), as: UTF8.self))
        }
        if let error = try? decoder.decode(V2ErrorBody.self, from: Data(body)) {
            return .failure(error)
        }
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        throw V2ProtocolError(description: "HTTP \(status) without an etcd error body: \(text)")
    }
}

/// A 401 answer of etcd v2's authentication.
struct V2Unauthorized: Error, Sendable {
    var message: String
}

struct V2ProtocolError: Error, Sendable, CustomStringConvertible {
    var description: String
}
