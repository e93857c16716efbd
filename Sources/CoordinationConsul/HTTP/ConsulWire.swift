// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The properties carry Consul's own JSON field names (`CreateIndex`, `ModifyIndex`…), so the
// Codable conformances need no key tables and read as the API documentation does.
@_spi(Backend) import CoordinationCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The JSON shapes of Consul's HTTP API that this backend reads and writes. Pure: no I/O.
enum ConsulWire {
    /// One KV entry as `/v1/kv` and `/v1/txn` return it. `Value` is base64 (`null` for an empty
    /// value, and in the results of writes inside a transaction).
    struct KVPair: Codable, Sendable, Equatable {
        var Key: String
        var CreateIndex: UInt64
        var ModifyIndex: UInt64
        var LockIndex: UInt64?
        var Flags: UInt64?
        var Value: String?
        var Session: String?

        var bytes: [UInt8] {
            guard let Value, !Value.isEmpty, let data = Data(base64Encoded: Value) else { return [] }
            return Array(data)
        }
    }

    /// One operation of a `/v1/txn` request.
    struct TxnOperation: Encodable, Sendable {
        struct KVOperation: Encodable, Sendable {
            var Verb: String
            var Key: String
            var Value: String?
            var Flags: UInt64?
            var Index: UInt64?
            var Session: String?
        }

        var KV: KVOperation

        static func kv(
            _ verb: String, _ key: String, value: [UInt8]? = nil, flags: UInt64? = nil, index: UInt64? = nil,
            session: String? = nil
        ) -> TxnOperation {
            TxnOperation(
                KV: KVOperation(
                    Verb: verb, Key: key, Value: value.map { Data($0).base64EncodedString() }, Flags: flags,
                    Index: index, Session: session))
        }
    }

    struct TxnResponse: Decodable, Sendable {
        struct Result: Decodable, Sendable { var KV: KVPair? }
        struct Failure: Decodable, Sendable {
            var OpIndex: Int
            var What: String
        }
        var Results: [Result]?
        var Errors: [Failure]?

        var pairs: [KVPair] { (Results ?? []).compactMap(\.KV) }
    }

    struct SessionCreate: Encodable, Sendable {
        var Name: String
        var TTL: String
        var Behavior: String
        var LockDelay: String
        /// Empty: the session is not tied to the node's serf health check, only to its TTL.
        var Checks: [String] = []
    }

    struct SessionCreated: Decodable, Sendable { var ID: String }

    struct SessionInfo: Decodable, Sendable {
        var ID: String
        var TTL: String?
        var Name: String?
        var Node: String?
    }

    /// `/v1/agent/service/register`.
    struct ServiceRegistration: Encodable, Sendable {
        struct Check: Encodable, Sendable {
            var CheckID: String
            var Name: String
            var TTL: String
            var Status: String
            var DeregisterCriticalServiceAfter: String
        }
        var ID: String
        var Name: String
        var Address: String
        var Port: Int
        var Meta: [String: String]
        var Check: Check
    }

    /// One element of `/v1/health/service/<name>`.
    struct HealthEntry: Decodable, Sendable {
        struct ServicePart: Decodable, Sendable {
            var ID: String
            var Service: String
            var Address: String?
            var Port: Int?
            var Meta: [String: String]?
        }
        struct NodePart: Decodable, Sendable { var Address: String? }
        var Service: ServicePart
        var Node: NodePart?

        var record: NativeServiceRecord {
            let service = self.Service
            let nodeAddress = self.Node?.Address ?? ""
            let address = (service.Address?.isEmpty ?? true) ? nodeAddress : service.Address!
            return NativeServiceRecord(
                name: service.Service, id: service.ID, address: address, port: service.Port ?? 0,
                metadata: service.Meta ?? [:])
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) -> T? {
        try? JSONDecoder().decode(type, from: Data(body))
    }

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? Array(JSONEncoder().encode(value))) ?? []
    }
}

/// Maps our keys into Consul's key space under an optional namespace (the connection string's path).
struct ConsulKeySpace: Sendable {
    let namespace: String

    func consulKey(_ key: Key) -> String { namespace.isEmpty ? key.path : namespace + "/" + key.path }

    /// The key of a Consul entry, or `nil` if it lies outside the namespace or is not a valid key
    /// (written by some other tool).
    func key(_ consulKey: String) -> Key? {
        var path = Substring(consulKey)
        if !namespace.isEmpty {
            guard path.hasPrefix(namespace + "/") else { return nil }
            path = path.dropFirst(namespace.count + 1)
        }
        guard let key = try? Key(String(path)), key.path == path else { return nil }
        return key
    }

    func entry(_ pair: ConsulWire.KVPair) -> Entry? {
        guard let key = key(pair.Key) else { return nil }
        return Entry(
            key: key,
            value: pair.bytes,
            createRevision: Revision(pair.CreateIndex),
            modifyRevision: Revision(pair.ModifyIndex),
            session: pair.Session.flatMap { $0.isEmpty ? nil : SessionID($0) }
        )
    }
}
