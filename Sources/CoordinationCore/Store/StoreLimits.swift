/// What a store accepts; checked before any I/O.
public struct StoreLimits: Sendable, Hashable {
    /// The largest value accepted, in bytes (etcd: 1.5 MiB request limit; ZooKeeper: ~1 MB
    /// `jute.maxbuffer`; Consul: 512 KiB; memory: configurable, 512 KiB by default so that code
    /// tested in memory fits every backend).
    public var maxValueSize: Int
    /// The shortest session TTL the backend honours.
    public var minimumSessionTTL: Duration
    /// The longest session TTL the backend honours.
    public var maximumSessionTTL: Duration

    public init(maxValueSize: Int, minimumSessionTTL: Duration, maximumSessionTTL: Duration) {
        self.maxValueSize = maxValueSize
        self.minimumSessionTTL = minimumSessionTTL
        self.maximumSessionTTL = maximumSessionTTL
    }
}

/// Optional behaviour a backend declares, so that portable code and the conformance suite can ask
/// instead of guessing. A suite that needs a capability the backend lacks says so by name.
public struct StoreCapabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A key may hold a value and have children at the same time (all but etcd v2).
    public static let valuesOnInnerNodes = StoreCapabilities(rawValue: 1 << 0)
    /// Delete events say whether the key was deleted explicitly or expired with its session.
    public static let distinguishesExpiry = StoreCapabilities(rawValue: 1 << 1)
    /// A session can be revoked by another client holding only its id.
    public static let revokeForeignSession = StoreCapabilities(rawValue: 1 << 2)
}

/// Which backend a store is, and where it talks to, for messages and logs.
public struct StoreDescription: Sendable, Hashable, CustomStringConvertible {
    /// `memory`, `etcd`, `zookeeper`, `consul`, `etcdv2`, or a third-party name.
    public var backend: String
    /// The endpoint(s), without credentials.
    public var endpoint: String

    public init(backend: String, endpoint: String) {
        self.backend = backend
        self.endpoint = endpoint
    }

    public var description: String { "\(backend)://\(endpoint)" }
}
