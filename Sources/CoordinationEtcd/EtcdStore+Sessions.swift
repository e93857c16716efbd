@_spi(Backend) import CoordinationCore
import CoordinationNIO
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

// Sessions are leases, kept alive on the store's one keep-alive stream (LeaseKeeper).
extension EtcdStore {
    public func makeSession(ttl: Duration) async throws(CoordinationError) -> Session {
        try validate(ttl: ttl)
        let seconds = max(
            1, Int64((Double(ttl.components.seconds) + Double(ttl.components.attoseconds) / 1e18).rounded(.up)))
        let requestedAt = ContinuousClock.now
        let response = try await call("makeSession", .leaseGrant, .with { $0.ttl = seconds })
        guard response.error.isEmpty, response.id != 0 else {
            throw errors.make(.serverError, "etcd refused a lease: \(response.error)")
        }
        let granted = Duration.seconds(response.ttl)
        let session = Session(
            id: SessionID(leaseID: response.id), ttl: granted, backend: self,
            guaranteedUntil: requestedAt.advanced(by: granted))
        leases.add(response.id, session: session, ttl: granted, requestedAt: requestedAt)
        return session
    }

    public func revokeSession(_ id: SessionID) async throws(CoordinationError) {
        guard let lease = id.leaseID else {
            throw errors.make(.invalidArgument, "'\(id)' is not an etcd lease id")
        }
        do {
            _ = try await call("revokeSession", .leaseRevoke, .with { $0.id = lease })
        } catch  where error.code == .sessionExpired {
            // Already gone: revoking is idempotent.
        }
        leases.expire(lease)
    }

    public func closeSession(_ id: SessionID) async throws(CoordinationError) {
        guard let lease = id.leaseID else { return }
        leases.remove(lease)
        do {
            _ = try await call("closeSession", .leaseRevoke, .with { $0.id = lease })
        } catch  where error.code == .sessionExpired {
            // Already gone.
        }
    }

    public func abandonSession(_ id: SessionID) {
        guard let lease = id.leaseID else { return }
        leases.abandon(lease)
    }
}

extension EtcdStore: SessionListingStore {
    /// Every lease of the cluster (`LeaseLeases`, as `etcdctl lease list`), whoever granted it. etcd
    /// reports ids only, so `SessionSummary.ttl` is nil (`LeaseTimeToLive` per lease would cost a
    /// call each).
    public func listSessions() async throws(CoordinationError) -> [SessionSummary] {
        let response = try await call("listSessions", .leaseLeases, Etcdserverpb_LeaseLeasesRequest())
        return response.leases.map { SessionSummary(id: SessionID(leaseID: $0.id)) }
    }
}
