@_spi(Backend) import CoordinationCore

/// Translates what gRPC and etcd report into ``CoordinationError``s that name the backend and
/// endpoint (never credentials).
struct EtcdErrorMapper: Sendable {
    let store: StoreDescription

    func map(_ error: any Error, _ operation: String, key: Key? = nil) -> CoordinationError {
        if let error = error as? CoordinationError {
            return store.attributed(error)
        }
        if error is CancellationError {
            return make(.cancelled, "\(operation) was cancelled", key: key)
        }
        guard let rpc = error as? GRPCCallError else {
            return make(.serverError, "\(operation) failed: \(error)", key: key)
        }
        let message = rpc.message
        switch rpc.code {
        case .unavailable:
            return make(.connectionFailed, "\(operation): etcd unavailable (\(message))", key: key)
        case .deadlineExceeded:
            return make(.timeout, "\(operation) did not complete before its deadline", key: key)
        case .unauthenticated:
            return make(.authenticationFailed, "\(operation): etcd rejected the credentials (\(message))", key: key)
        case .permissionDenied:
            return make(.permissionDenied, "\(operation): permission denied (\(message))", key: key)
        case .notFound where message.contains("lease"):
            return make(.sessionExpired, "\(operation): the session's lease no longer exists", key: key)
        case .invalidArgument
        where message.contains("authentication failed") || message.contains("user name is empty")
            || message.contains("invalid auth token"):
            // etcd reports login failures and missing credentials as invalid arguments.
            return make(.authenticationFailed, "\(operation): \(message)", key: key)
        case .invalidArgument where message.contains("permission denied"):
            return make(.permissionDenied, "\(operation): \(message)", key: key)
        case .invalidArgument where message.contains("too large"):
            return make(.valueTooLarge, "\(operation): etcd refused the request as too large", key: key)
        case .invalidArgument:
            return make(.invalidArgument, "\(operation): \(message)", key: key)
        case .outOfRange where message.contains("compacted"):
            return make(.historyLost, "\(operation): the revision was compacted", key: key)
        case .cancelled:
            return make(.cancelled, "\(operation) was cancelled", key: key)
        default:
            return make(.serverError, "\(operation) failed: \(rpc.code) \(message)", key: key)
        }
    }

    func make(_ code: CoordinationError.Code, _ message: String, key: Key? = nil) -> CoordinationError {
        store.error(code, message, key: key)
    }
}
