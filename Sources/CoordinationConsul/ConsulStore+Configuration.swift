import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import Logging

extension ConsulStore {
    public struct Configuration: Sendable {
        /// The agent to talk to (it forwards to the servers).
        public var endpoint: Endpoint
        /// The datacenter to address (`?dc=`); `nil` for the agent's own.
        public var datacenter: String?
        /// An ACL token, sent in the `X-Consul-Token` header; never logged or shown in errors.
        public var token: String?
        /// HTTPS to the agent (its `ports.https`, 8501 by convention) with these certificates; `nil`:
        /// plain HTTP, where the token crosses the wire in clear. The agent's certificate is always
        /// verified; a client certificate answers the agent's `verify_incoming`.
        public var tls: TLSSettings?
        /// A key prefix under which this store keeps everything (empty: none).
        public var namespace: String
        /// The deadline of every ordinary call.
        public var requestTimeout: Duration
        /// How long one blocking query waits at the server (Consul caps it at 10 minutes). The
        /// HTTP deadline of such a query is this plus Consul's jitter (wait/16) plus `requestTimeout`.
        public var blockingWait: Duration
        /// Consul's lock-delay for the sessions this store creates: after a session is invalidated
        /// (expiry, destroy), the keys it held cannot be acquired for this long. Consul's default is
        /// 15 s. It delays failover of shared lock keys (`prefix/.lock`) by that much; contender keys
        /// are named by their own session and never wait for it. `.zero` disables it.
        public var lockDelay: Duration
        /// How long to wait before trying again when Consul refuses to acquire a free lock key
        /// (its lock-delay is still running). Go's `api.Lock` waits 5 s.
        public var lockRetryInterval: Duration
        /// The shortest session TTL to accept: Consul's `session_ttl_min`, 10 s unless the agent is
        /// configured otherwise.
        public var minimumSessionTTL: Duration
        /// The session name shown in Consul's UI and API.
        public var sessionName: String
        /// For native service registrations: how long a service may stay critical before Consul
        /// removes it (Consul's own minimum is one minute).
        public var deregisterCriticalServiceAfter: Duration
        /// The largest value accepted: Consul's `kv_max_value_size`, 512 KiB by default.
        public var maxValueSize: Int
        public var logger: Logger

        public init(
            endpoint: Endpoint = Endpoint(host: "127.0.0.1", port: 8500),
            datacenter: String? = nil,
            token: String? = nil,
            tls: TLSSettings? = nil,
            namespace: String = "",
            requestTimeout: Duration = .seconds(5),
            blockingWait: Duration = .seconds(60),
            lockDelay: Duration = .seconds(15),
            lockRetryInterval: Duration = .seconds(1),
            minimumSessionTTL: Duration = .seconds(10),
            sessionName: String = "swift-coordination",
            deregisterCriticalServiceAfter: Duration = .seconds(60),
            maxValueSize: Int = 512 * 1024,
            logger: Logger = Logger(label: "swift-coordination.consul")
        ) {
            self.endpoint = endpoint
            self.datacenter = datacenter
            self.token = token
            self.tls = tls
            self.namespace = namespace
            self.requestTimeout = requestTimeout
            self.blockingWait = blockingWait
            self.lockDelay = lockDelay
            self.lockRetryInterval = lockRetryInterval
            self.minimumSessionTTL = minimumSessionTTL
            self.sessionName = sessionName
            self.deregisterCriticalServiceAfter = deregisterCriticalServiceAfter
            self.maxValueSize = maxValueSize
            self.logger = logger
        }
    }

    /// Adds `consul://host:port[/namespace][?dc=…&token=…&timeout=5s&wait=60s&lock-delay=15s&ttl-min=10s]`
    /// to `registry`. A token can also be given as the password (`consul://:TOKEN@host:port`).
    /// HTTPS: the TLS options every backend takes (`ca=`, `cert=`, `key=`, `servername=`,
    /// `tls=true`), or the scheme `consuls://` (TLS with the system's CAs unless `ca=` says
    /// otherwise; as Consul's own tools take `https://` addresses). With TLS the port defaults to
    /// 8501, Consul's conventional HTTPS port; otherwise to 8500.
    public static func register(in registry: inout StoreRegistry) {
        for scheme in ["consul", "consuls"] {
            registry.register(scheme: scheme) { (connection, configuration) throws(CoordinationError) in
                let options = try ConnectionOptions(
                    connection, backend: scheme, known: ["dc", "token", "timeout", "wait", "lock-delay", "ttl-min"],
                    acceptsTLS: true)
                var tls = try options.tls()
                if scheme == "consuls", tls == nil {
                    guard try options.flag("tls") != false else {
                        throw CoordinationError(
                            .invalidConnectionString, "consuls://: is HTTPS; tls=false contradicts it (use consul://)",
                            backend: "consul")
                    }
                    tls = TLSSettings()
                }
                var settings = Configuration(
                    endpoint: try options.endpoints(defaultPort: tls == nil ? 8500 : 8501, single: true)[0],
                    datacenter: options.string("dc"),
                    token: options.string("token") ?? connection.password ?? connection.user,
                    tls: tls,
                    namespace: connection.path,
                    logger: configuration.logger
                )
                if let value = try options.positiveDuration("timeout") { settings.requestTimeout = value }
                if let value = try options.positiveDuration("wait") { settings.blockingWait = value }
                if let value = try options.duration("lock-delay") { settings.lockDelay = value }
                if let value = try options.positiveDuration("ttl-min") { settings.minimumSessionTTL = value }
                return try ConsulStore(configuration: settings)
            }
        }
    }
}
