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

extension StoreDescription {
    /// An error of this store: `message`, naming `key`, this backend and its endpoint. The one way a
    /// backend attributes what it reports.
    @_spi(Backend) public func error(
        _ code: CoordinationError.Code,
        _ message: String,
        key: Key? = nil,
        underlying: (any Error & Sendable)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) -> CoordinationError {
        CoordinationError(
            code, message, key: key?.path, backend: backend, endpoint: endpoint, underlying: underlying, file: file,
            line: line)
    }

    /// `error` with this backend and endpoint filled in where it names none.
    @_spi(Backend) public func attributed(_ error: CoordinationError) -> CoordinationError {
        error.attributed(backend: backend, endpoint: endpoint)
    }
}
