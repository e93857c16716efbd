@_spi(Backend) import CoordinationCore
import Logging

extension ZooKeeperStore {
    public struct Configuration: Sendable {
        /// The ensemble's members; the store connects to one and moves on when it fails.
        public var endpoints: [Endpoint]
        /// Whether each session starts at a random member (spreading clients over the ensemble, as
        /// ZooKeeper's own clients do) rather than the first one listed.
        public var shuffleEndpoints: Bool
        /// A znode path under which the store keeps everything (`""`: the root).
        public var chroot: String
        /// The timeout of the store's own session (reads, watches, unbound writes). A call waits
        /// at most this long for the session to move to another server.
        public var sessionTimeout: Duration
        /// How long opening a session (TCP connect and handshake, all members) may take.
        public var connectTimeout: Duration
        /// The largest value accepted (ZooKeeper's `jute.maxbuffer` is 1 MiB per packet).
        public var maxValueSize: Int
        /// The session TTLs accepted; the server clamps a session timeout to its own
        /// `minSessionTimeout`...`maxSessionTimeout` (2 to 20 ticks by default), and a
        /// `Session.ttl` is the negotiated one. With a ``followerBound``, `minimumSessionTTL` is the
        /// shortest guarantee a session is given, and the shortest TTL accepted is the bound plus it
        /// (`limits.minimumSessionTTL`).
        public var minimumSessionTTL: Duration
        public var maximumSessionTTL: Duration
        /// How long a member cut off from the quorum can go on answering pings after the quorum
        /// last heard from it: the ensemble's `(syncLimit + 1) × tickTime` — a follower gives up
        /// `syncLimit × tickTime` after the last packet from its leader, and the leader's last
        /// word from it can be half a tick older; the rest of the tick is for scheduling. 12 s for
        /// ZooKeeper's sample configuration (5 and 2 s); `.zero` for a standalone server. A ping's reply then guarantees a `Session` only for its timeout
        /// less this bound, so a holder whose member was cut off still learns of the loss before
        /// the quorum can expire its session. A session's TTL must be at least this plus
        /// ``minimumSessionTTL``: 13 s by default; the recipes' default TTL is the bound plus 10 s, 22 s
        /// (`limits.defaultSessionTTL`).
        public var followerBound: Duration
        /// ZooKeeper `digest` credentials, added to every connection (`addauth digest
        /// user:password`, after each handshake and reconnect). The nodes the store creates then
        /// get all permissions for this identity only (`auth` ACL), so clients without the
        /// credentials are refused (`permissionDenied`). The user name must not contain `:`.
        /// The digest scheme sends the password in clear: use it with ``tls``.
        public var credentials: (username: String, password: String)?
        /// With ``credentials``: also let everyone read the nodes the store creates (world READ).
        public var worldReadable: Bool
        /// TLS to the members' `secureClientPort` with these certificates; `nil`: plain TCP.
        public var tls: TLSSettings?
        public var logger: Logger

        public init(
            endpoints: [Endpoint],
            shuffleEndpoints: Bool = true,
            chroot: String = "",
            sessionTimeout: Duration = .seconds(10),
            connectTimeout: Duration = .seconds(5),
            maxValueSize: Int = 1_000_000,
            minimumSessionTTL: Duration = .seconds(1),
            maximumSessionTTL: Duration = .seconds(600),
            followerBound: Duration = .seconds(12),
            credentials: (username: String, password: String)? = nil,
            worldReadable: Bool = false,
            tls: TLSSettings? = nil,
            logger: Logger = Logger(label: "swift-coordination.zookeeper")
        ) {
            self.credentials = credentials
            self.worldReadable = worldReadable
            self.tls = tls
            self.endpoints = endpoints
            self.shuffleEndpoints = shuffleEndpoints
            self.chroot = chroot
            self.sessionTimeout = sessionTimeout
            self.connectTimeout = connectTimeout
            self.maxValueSize = maxValueSize
            self.minimumSessionTTL = minimumSessionTTL
            self.maximumSessionTTL = maximumSessionTTL
            self.followerBound = followerBound
            self.logger = logger
        }
    }

    /// Adds `zookeeper://[user:password@]h1:p1,h2:p2/chroot[?timeout=10s&connect-timeout=5s&follower-bound=10s&world-readable=true]`
    /// to `registry`. `user:password@` adds a `digest` identity; TLS takes the options every backend
    /// takes (`ca=`, `cert=`, `key=`, `servername=`, `tls=true`), to the members' secure client port.
    public static func register(in registry: inout StoreRegistry) {
        registry.register(scheme: "zookeeper") { (connection, configuration) throws(CoordinationError) in
            let options = try ConnectionOptions(
                connection, backend: "zookeeper",
                known: ["timeout", "connect-timeout", "follower-bound", "world-readable"],
                acceptsTLS: true)
            var settings = Configuration(
                endpoints: try options.endpoints(defaultPort: 2181), chroot: connection.path,
                tls: try options.tls(), logger: configuration.logger)
            if let user = connection.user { settings.credentials = (user, connection.password ?? "") }
            if let value = try options.positiveDuration("timeout") { settings.sessionTimeout = value }
            if let value = try options.positiveDuration("connect-timeout") { settings.connectTimeout = value }
            if let value = try options.duration("follower-bound") { settings.followerBound = value }
            if let value = try options.flag("world-readable") { settings.worldReadable = value }
            return try ZooKeeperStore(configuration: settings)
        }
    }
}
