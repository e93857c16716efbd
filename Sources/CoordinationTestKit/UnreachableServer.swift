import CoordinationCore

/// What a user sees when the server cannot be reached: a `connectionFailed` that names the cause
/// ("connection refused", "unknown host '…'"), for a get, a session and a watch alike, within
/// `deadline`. A bad-input test of each backend runs this with a store of `127.0.0.1:1` (nothing
/// listens there) and one of a host that does not resolve.
public enum UnreachableServer {
    /// The port nothing listens on, on loopback.
    public static let refusingEndpoint = Endpoint(host: "127.0.0.1", port: 1)
    /// A name that never resolves (`.invalid` is reserved for that, RFC 2606).
    public static let unknownHostEndpoint = Endpoint(host: "no-such-host.invalid", port: 2379)

    /// Runs `store`, makes the three calls, and checks each error names `cause`.
    public static func expectCause(
        _ cause: String, from store: some KeyValueStore, deadline: Duration = .seconds(15)
    ) async throws {
        try await store.withRunning { store in
            let calls: [(String, @Sendable () async throws -> Void)] = [
                ("get", { _ = try await store.get(try Key("k")) }),
                ("makeSession", { _ = try await store.makeSession(ttl: .seconds(30)) }),
                ("watch", { _ = try await store.watch(try Key("k")) }),
            ]
            for (name, call) in calls {
                let error = try await withDeadline(deadline, "\(name) fails") { () async throws -> CoordinationError? in
                    do {
                        try await call()
                        return nil
                    } catch let error as CoordinationError {
                        return error
                    }
                }
                guard let error else { throw ConformanceFailure("\(name) succeeded against an unreachable server") }
                guard error.code == .connectionFailed, error.message.contains(cause) else {
                    throw ConformanceFailure("\(name): expected connectionFailed naming '\(cause)', got \(error)")
                }
            }
        }
    }
}
