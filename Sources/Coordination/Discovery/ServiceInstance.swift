import CoordinationCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One registered instance of a service.
///
/// Stored as JSON under `base/<name>/<id>` with the field names of Curator's service discovery
/// (`name`, `id`, `address`, `port`, `payload`, `registrationTimeUTC`, `serviceType`), so tools that
/// read Curator registrations can read these too; our metadata travels in `payload`.
public struct ServiceInstance: Sendable, Hashable, Codable {
    public var name: String
    public var id: String
    public var address: String
    public var port: Int
    /// Free-form metadata (version, zone, weight…).
    public var metadata: [String: String]
    /// Milliseconds since 1970 when this registration was written.
    public var registrationTimeUTC: Int64

    /// An instance, checked now rather than when it is registered: `name` and `id` must each be a
    /// single key segment (see `Key`), and `port` within 0...65535.
    ///
    /// - Throws: `invalidKey` for a name or id that cannot be a key segment, `invalidArgument` for
    ///   a port out of range.
    public init(
        name: String, id: String, address: String, port: Int, metadata: [String: String] = [:]
    ) throws(CoordinationError) {
        self.name = name
        self.id = id
        self.address = address
        self.port = port
        self.metadata = metadata
        self.registrationTimeUTC = 0
        _ = try Self.segments(name: name, id: id)
        guard (0...65535).contains(port) else {
            throw CoordinationError(
                .invalidArgument, "port \(port) of service instance '\(id)' is not within 0...65535")
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, id, address, port, registrationTimeUTC, serviceType
        case metadata = "payload"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        id = try container.decode(String.self, forKey: .id)
        address = try container.decodeIfPresent(String.self, forKey: .address) ?? ""
        port = try container.decodeIfPresent(Int.self, forKey: .port) ?? 0
        metadata = (try? container.decodeIfPresent([String: String].self, forKey: .metadata)) ?? [:]
        registrationTimeUTC = try container.decodeIfPresent(Int64.self, forKey: .registrationTimeUTC) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(id, forKey: .id)
        try container.encode(address, forKey: .address)
        try container.encode(port, forKey: .port)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(registrationTimeUTC, forKey: .registrationTimeUTC)
        try container.encode("DYNAMIC", forKey: .serviceType)
    }

    /// Checks the name and id can be key segments (one rule set, see `Key`).
    func key(under base: Key) throws(CoordinationError) -> Key {
        let (nameKey, idKey) = try Self.segments(name: name, id: id)
        return base.appending(nameKey).appending(idKey)
    }

    private static func segments(name: String, id: String) throws(CoordinationError) -> (Key, Key) {
        let nameKey = try Key(name)
        let idKey = try Key(id)
        guard nameKey.segments.count == 1, idKey.segments.count == 1 else {
            throw CoordinationError(
                .invalidKey, "service name and instance id must be single key segments", key: "\(name)/\(id)")
        }
        return (nameKey, idKey)
    }

    func encoded() throws(CoordinationError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Array(try encoder.encode(self))
        } catch {
            throw CoordinationError(.invalidArgument, "cannot encode service instance \(id): \(error)")
        }
    }

    static func decode(_ entry: Entry) -> ServiceInstance? {
        try? JSONDecoder().decode(ServiceInstance.self, from: Data(entry.value))
    }
}

extension ServiceInstance {
    /// The instance as a native catalog entry.
    var nativeRecord: NativeServiceRecord {
        NativeServiceRecord(name: name, id: id, address: address, port: port, metadata: metadata)
    }

    init(_ record: NativeServiceRecord) {
        name = record.name
        id = record.id
        address = record.address
        port = record.port
        metadata = record.metadata
        registrationTimeUTC = 0
    }
}
