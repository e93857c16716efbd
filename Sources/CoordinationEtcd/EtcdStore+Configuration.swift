@_spi(Backend) import CoordinationCore
import Logging

extension EtcdStore {
    public struct Configuration: Sendable {
        /// The members to talk to. Several give failover: a call goes to a member that answers.
        public var endpoints: [Endpoint]
        /// A key prefix under which this store keeps everything (empty: none).
        public var namespace: String
        /// The deadline of every unary call.
        public var requestTimeout: Duration
        /// Username and password for etcd's authentication, if enabled.
        public var credentials: (username: String, password: String)?
        /// The largest value accepted (etcd's own request limit is 1.5 MiB by default).
        public var maxValueSize: Int
        /// TLS for the client connections (etcd's `https://` client URLs); `nil`: plain TCP.
        public var tls: TLSSettings?
        public var logger: Logger

        public init(
            endpoints: [Endpoint],
            namespace: String = "",
            requestTimeout: Duration = .seconds(5),
            credentials: (username: String, password: String)? = nil,
            maxValueSize: Int = 1024 * 1024,
            tls: TLSSettings? = nil,
            logger: Logger = Logger(label: "swift-coordination.etcd")
        ) {
            self.endpoints = endpoints
            self.namespace = namespace
            self.requestTimeout = requestTimeout
            self.credentials = credentials
            self.maxValueSize = maxValueSize
            self.tls = tls
            self.logger = logger
        }
    }

    /// Adds the `etcd://h1:p1,h2:p2[/namespace][?timeout=5s]` scheme to `registry`; a
    /// `user:password@` part logs in with etcd's authentication. TLS: `tls=true` (the system's CAs),
    /// or `ca=`, `cert=`, `key=` (PEM files) and `servername=`, as etcdctl's flags.
    public static func register(in registry: inout StoreRegistry) {
        registry.register(scheme: "etcd") { (connection, configuration) throws(CoordinationError) in
            let options = try ConnectionOptions(connection, backend: "etcd", known: ["timeout"], acceptsTLS: true)
            var settings = Configuration(
                endpoints: try options.endpoints(defaultPort: 2379),
                namespace: connection.path,
                tls: try options.tls(),
                logger: configuration.logger
            )
            if let user = connection.user { settings.credentials = (user, connection.password ?? "") }
            if let timeout = try options.positiveDuration("timeout") { settings.requestTimeout = timeout }
            return try EtcdStore(configuration: settings)
        }
    }
}
