/// One service instance as a backend's own service catalog knows it.
public struct NativeServiceRecord: Sendable, Hashable {
    public var name: String
    public var id: String
    public var address: String
    public var port: Int
    public var metadata: [String: String]

    public init(name: String, id: String, address: String, port: Int, metadata: [String: String] = [:]) {
        self.name = name
        self.id = id
        self.address = address
        self.port = port
        self.metadata = metadata
    }
}

/// An optional capability: a backend with a service catalog of its own (Consul's agent services
/// and health checks), so that instances registered through this library show up in that
/// backend's own tools (Consul's catalog, health API and DNS).
///
/// `ServiceRegistration` and `ServiceDiscovery` use it when the store offers it and the caller asks
/// for the native catalog; otherwise they keep their key/value layout, which works on every
/// backend. A store offers it by conforming to this protocol; recipes ask with `as?`, never by
/// backend name.
public protocol NativeServiceRegistry: Sendable {
    /// Registers (or replaces) `record` with a health check that fails unless
    /// ``passServiceCheck(id:)`` is called at least once per `ttl`.
    func registerService(_ record: NativeServiceRecord, ttl: Duration) async throws(CoordinationError)
    /// The heartbeat: marks the instance's check passing for another TTL. Throws `keyNotFound` if
    /// the backend no longer knows the instance (it must be registered again).
    func passServiceCheck(id: String) async throws(CoordinationError)
    /// Removes the instance from the catalog. Removing an unknown instance is not an error.
    func deregisterService(id: String) async throws(CoordinationError)
    /// The instances of `name` whose checks pass, sorted by id.
    func healthyServices(named name: String) async throws(CoordinationError) -> [NativeServiceRecord]
    /// The healthy instances of `name` now, then again every time that set changes, served by the
    /// backend's own change notification (no polling). Fails by throwing.
    func watchHealthyServices(named name: String) async throws(CoordinationError) -> NativeMembershipStream
}

/// Successive full memberships of a service in a native catalog, each sorted by id.
public typealias NativeMembershipStream = AsyncThrowingStream<[NativeServiceRecord], any Error>
