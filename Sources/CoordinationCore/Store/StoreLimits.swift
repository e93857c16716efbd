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
