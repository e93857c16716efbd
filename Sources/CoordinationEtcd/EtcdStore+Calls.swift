@_spi(Backend) import CoordinationCore
import CoordinationNIO
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

// How every unary call is made: the store's deadline, authentication, error mapping.
extension EtcdStore {
    func leaseID(_ session: Session?, key: Key) throws(CoordinationError) -> Int64 {
        guard let session else { return 0 }
        guard session.isActive, let lease = session.id.leaseID else {
            throw errors.make(.sessionExpired, "session \(session.id) has ended; cannot bind a key to it", key: key)
        }
        return lease
    }

    func metadata() -> [(String, String)] {
        guard let token = authToken.withLock({ $0 }) else { return [] }
        return [("token", token)]
    }

    /// Runs one unary call with the store's deadline, mapping failures to ``CoordinationError``.
    /// With credentials configured it logs in first, and again once if the token was rejected.
    func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ operation: String,
        key: Key? = nil,
        _ rpc: EtcdRPC<Request, Response>,
        _ request: Request
    ) async throws(CoordinationError) -> Response {
        try await Telemetry.storeCall(backend: "etcd", operation: operation) { () async throws(CoordinationError) in
            try await callUntraced(operation, key: key, rpc, request)
        }
    }

    private func callUntraced<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ operation: String,
        key: Key?,
        _ rpc: EtcdRPC<Request, Response>,
        _ request: Request
    ) async throws(CoordinationError) -> Response {
        if closed.load(ordering: .acquiring) {
            throw errors.make(.storeClosed, "the store was closed", key: key)
        }
        do {
            if configuration.credentials != nil, authToken.withLock({ $0 }) == nil {
                try await authenticate()
            }
            do {
                return try await onTaskExecutor {
                    try await transport.unary(
                        rpc.path, request, metadata: metadata(), timeout: configuration.requestTimeout,
                        readOnly: rpc.readOnly, as: Response.self)
                }
            } catch let error as GRPCCallError where error.code == .unauthenticated && configuration.credentials != nil
            {
                try await authenticate()
                return try await onTaskExecutor {
                    try await transport.unary(
                        rpc.path, request, metadata: metadata(), timeout: configuration.requestTimeout,
                        readOnly: rpc.readOnly, as: Response.self)
                }
            }
        } catch {
            if Task.isCancelled { throw errors.make(.cancelled, "\(operation) was cancelled", key: key) }
            throw errors.map(error, operation, key: key)
        }
    }

    /// The metadata a long-lived stream opens with: logs in first when credentials are configured
    /// (etcd checks a watch's permissions against the token its stream was opened with).
    @Sendable func streamMetadata() async throws -> [(String, String)] {
        if configuration.credentials != nil, authToken.withLock({ $0 }) == nil {
            try await authenticate()
        }
        return metadata()
    }

    func authenticate() async throws {
        guard let credentials = configuration.credentials else { return }
        let response = try await transport.unary(
            EtcdRPC.authenticate.path,
            Etcdserverpb_AuthenticateRequest.with {
                $0.name = credentials.username
                $0.password = credentials.password
            },
            metadata: [],
            timeout: configuration.requestTimeout,
            as: Etcdserverpb_AuthenticateResponse.self
        )
        authToken.withLock { $0 = response.token }
    }
}
