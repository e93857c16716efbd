/// What a store accepts; checked before any I/O.
public struct StoreLimits: Sendable, Hashable {
    /// The largest value accepted, in bytes (etcd: 1.5 MiB request limit; ZooKeeper: ~1 MB
    /// `jute.maxbuffer`; Consul: 512 KiB; memory: configurable, 512 KiB by default so that code
    /// tested in memory fits every backend).
    public var maxValueSize: Int
    /// The shortest session TTL the backend honours (on ZooKeeper with a follower bound, the bound
    /// plus the shortest guarantee worth having).
    public var minimumSessionTTL: Duration
    /// The longest session TTL the backend honours.
    public var maximumSessionTTL: Duration

    public init(maxValueSize: Int, minimumSessionTTL: Duration, maximumSessionTTL: Duration) {
        self.maxValueSize = maxValueSize
        self.minimumSessionTTL = minimumSessionTTL
        self.maximumSessionTTL = maximumSessionTTL
    }

    /// The session TTL the recipes use when none is given: 10 s, or twice ``minimumSessionTTL`` where
    /// that is longer (ZooKeeper with its default follower bound of 12 s: 26 s), at most
    /// ``maximumSessionTTL``. Portable code that makes its own sessions can use it too.
    public var defaultSessionTTL: Duration {
        min(max(.seconds(10), minimumSessionTTL * 2), maximumSessionTTL)
    }
}
