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

    /// The session TTL the recipes use when none is given (`LeaderCandidate`, `ServiceRegistration`,
    /// `coordctl`); portable code that makes its own sessions can use it too. 10 s unless the
    /// backend says otherwise, within ``minimumSessionTTL``...``maximumSessionTTL``: ZooKeeper with a
    /// follower bound takes the bound plus 10 s, so that a session is guaranteed as long as elsewhere
    /// (22 s with the default bound of 12 s).
    public var defaultSessionTTL: Duration

    /// How long the default session is guaranteed: ``defaultSessionTTL`` where no backend says
    /// otherwise, and what a backend that takes part of a TTL off its guarantee adds to that part.
    @_spi(Backend) public static let defaultGuarantee = Duration.seconds(10)

    /// `defaultSessionTTL` nil: `defaultGuarantee`. It is brought within the minimum and maximum
    /// either way.
    public init(
        maxValueSize: Int, minimumSessionTTL: Duration, maximumSessionTTL: Duration, defaultSessionTTL: Duration? = nil
    ) {
        self.maxValueSize = maxValueSize
        self.minimumSessionTTL = minimumSessionTTL
        self.maximumSessionTTL = maximumSessionTTL
        self.defaultSessionTTL = min(
            max(defaultSessionTTL ?? Self.defaultGuarantee, minimumSessionTTL), maximumSessionTTL)
    }
}
