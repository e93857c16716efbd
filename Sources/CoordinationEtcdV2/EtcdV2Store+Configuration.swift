@_spi(Backend) import CoordinationCore
import Logging

extension EtcdV2Store {
    public struct Configuration: Sendable {
        /// The member to talk to.
        public var endpoint: Endpoint
        /// A directory under which this store keeps everything (empty: none).
        public var namespace: String
        /// The deadline of every request other than a watch's long poll.
        public var requestTimeout: Duration
        /// How long one watch long poll waits for an event before it is sent again from the same
        /// index (etcd v2 has no server-side wait limit, so this deadline is the wait).
        public var watchPollTimeout: Duration
        /// How long a watch keeps trying to reach etcd before it fails with `connectionFailed`.
        public var watchReconnectLimit: Duration
        /// The largest value accepted (etcd's request limit is 1.5 MiB; the value may grow by a
        /// third when it is stored base64-encoded).
        public var maxValueSize: Int
        /// Username and password for etcd v2's authentication (HTTP basic auth on every request),
        /// if it is enabled. Use it with ``tls``: basic auth over plain HTTP sends the password in
        /// clear.
        public var credentials: (username: String, password: String)?
        /// HTTPS to the member (its `https://` client URL) with these certificates; `nil`: plain HTTP.
        public var tls: TLSSettings?
        public var logger: Logger

        public init(
            endpoint: Endpoint,
            namespace: String = "",
            requestTimeout: Duration = .seconds(5),
            watchPollTimeout: Duration = .seconds(30),
            watchReconnectLimit: Duration = .seconds(10),
            maxValueSize: Int = 1024 * 1024,
            credentials: (username: String, password: String)? = nil,
            tls: TLSSettings? = nil,
            logger: Logger = Logger(label: "swift-coordination.etcdv2")
        ) {
            self.endpoint = endpoint
            self.namespace = namespace
            self.requestTimeout = requestTimeout
            self.watchPollTimeout = watchPollTimeout
            self.watchReconnectLimit = watchReconnectLimit
            self.maxValueSize = maxValueSize
            self.credentials = credentials
            self.tls = tls
            self.logger = logger
        }
    }

    /// Adds the `etcdv2://[user:password@]host:port[/namespace][?timeout=5s]` scheme to `registry`;
    /// `user:password@` logs in with etcd v2's authentication. TLS: the options every backend takes
    /// (`ca=`, `cert=`, `key=`, `servername=`, `tls=true`).
    public static func register(in registry: inout StoreRegistry) {
        registry.register(scheme: "etcdv2") { (connection, configuration) throws(CoordinationError) in
            let options = try ConnectionOptions(connection, backend: "etcdv2", known: ["timeout"], acceptsTLS: true)
            var settings = Configuration(
                endpoint: try options.endpoints(defaultPort: 2379, single: true)[0], namespace: connection.path,
                tls: try options.tls(), logger: configuration.logger)
            if let user = connection.user { settings.credentials = (user, connection.password ?? "") }
            if let timeout = try options.positiveDuration("timeout") { settings.requestTimeout = timeout }
            return try EtcdV2Store(configuration: settings)
        }
    }
}
