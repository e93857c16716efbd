import SwiftProtobuf

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Builders for the few request shapes the store sends, so each operation reads as what it does.
extension Etcdserverpb_Compare {
    /// The key does not exist (`create_revision == 0`).
    static func absent(_ key: Data) -> Self {
        .with {
            $0.key = key
            $0.target = .create
            $0.result = .equal
            $0.createRevision = 0
        }
    }

    /// The key's `mod_revision` is exactly `revision`.
    static func modified(_ key: Data, at revision: Int64) -> Self {
        .with {
            $0.key = key
            $0.target = .mod
            $0.result = .equal
            $0.modRevision = revision
        }
    }
}

extension Etcdserverpb_RequestOp {
    static func put(_ key: Data, _ value: Data, lease: Int64, previous: Bool = false) -> Self {
        .with {
            $0.requestPut = .with {
                $0.key = key
                $0.value = value
                $0.lease = lease
                $0.prevKv = previous
            }
        }
    }

    /// Reads one key, or the range [key, rangeEnd).
    static func range(_ key: Data, rangeEnd: Data = Data(), serializable: Bool = false) -> Self {
        .with {
            $0.requestRange = .with {
                $0.key = key
                $0.rangeEnd = rangeEnd
                $0.serializable = serializable
            }
        }
    }

    /// The first key of [start, end) by create revision: the head of a line of contenders.
    /// Reads the range [start, end) in creation order (a line of contenders, first in line first).
    static func byCreation(_ start: Data, _ end: Data) -> Self {
        .with {
            $0.requestRange = .with {
                $0.key = start
                $0.rangeEnd = end
                $0.sortTarget = .create
                $0.sortOrder = .ascend
            }
        }
    }

    /// The `limit` keys of [start, end) created last, newest first; with `createdBefore`, only
    /// keys created before that revision. The response's `count` is the size of the whole range
    /// (etcd counts before it filters and truncates). This is how a contender finds the one just
    /// ahead of it without reading the whole line, as etcd's own `Mutex` does.
    static func lastCreated(
        _ start: Data, _ end: Data, limit: Int64, createdBefore revision: Int64? = nil, serializable: Bool = false
    ) -> Self {
        .with {
            $0.requestRange = .with {
                $0.key = start
                $0.rangeEnd = end
                $0.sortTarget = .create
                $0.sortOrder = .descend
                $0.limit = limit
                $0.serializable = serializable
                if let revision { $0.maxCreateRevision = revision - 1 }
            }
        }
    }

    /// Deletes one key, or the range [key, rangeEnd).
    static func delete(_ key: Data, rangeEnd: Data = Data()) -> Self {
        .with {
            $0.requestDeleteRange = .with {
                $0.key = key
                $0.rangeEnd = rangeEnd
            }
        }
    }
}

/// One etcd RPC: its gRPC path, and the message types it takes and returns (field numbers and
/// paths from etcd's `rpc.proto`, package `etcdserverpb`).
struct EtcdRPC<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable {
    let path: String
    /// The call changes nothing on the server, so it may be sent again when its outcome is unknown
    /// (the connection broke under it), as etcd's own client does for its immutable calls.
    var readOnly = false
}

extension EtcdRPC where Request == Etcdserverpb_RangeRequest, Response == Etcdserverpb_RangeResponse {
    static var range: Self { .init(path: "/etcdserverpb.KV/Range", readOnly: true) }
}

extension EtcdRPC where Request == Etcdserverpb_PutRequest, Response == Etcdserverpb_PutResponse {
    static var put: Self { .init(path: "/etcdserverpb.KV/Put") }
}

extension EtcdRPC where Request == Etcdserverpb_DeleteRangeRequest, Response == Etcdserverpb_DeleteRangeResponse {
    static var deleteRange: Self { .init(path: "/etcdserverpb.KV/DeleteRange") }
}

extension EtcdRPC where Request == Etcdserverpb_TxnRequest, Response == Etcdserverpb_TxnResponse {
    static var txn: Self { .init(path: "/etcdserverpb.KV/Txn") }
}

extension EtcdRPC where Request == Etcdserverpb_CompactionRequest, Response == Etcdserverpb_CompactionResponse {
    static var compact: Self { .init(path: "/etcdserverpb.KV/Compact") }
}

extension EtcdRPC where Request == Etcdserverpb_LeaseGrantRequest, Response == Etcdserverpb_LeaseGrantResponse {
    static var leaseGrant: Self { .init(path: "/etcdserverpb.Lease/LeaseGrant") }
}

extension EtcdRPC where Request == Etcdserverpb_LeaseRevokeRequest, Response == Etcdserverpb_LeaseRevokeResponse {
    static var leaseRevoke: Self { .init(path: "/etcdserverpb.Lease/LeaseRevoke") }
}

extension EtcdRPC where Request == Etcdserverpb_LeaseLeasesRequest, Response == Etcdserverpb_LeaseLeasesResponse {
    static var leaseLeases: Self { .init(path: "/etcdserverpb.Lease/LeaseLeases", readOnly: true) }
}

extension EtcdRPC where Request == Etcdserverpb_AuthenticateRequest, Response == Etcdserverpb_AuthenticateResponse {
    static var authenticate: Self { .init(path: "/etcdserverpb.Auth/Authenticate") }
}
