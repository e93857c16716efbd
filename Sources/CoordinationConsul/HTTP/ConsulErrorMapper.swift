import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import NIOSSL

/// Translates transport failures and agent answers into ``CoordinationError``s naming the backend
/// and endpoint (never the ACL token).
struct ConsulErrorMapper: Sendable {
    let store: StoreDescription

    func make(_ code: CoordinationError.Code, _ message: String, key: Key? = nil) -> CoordinationError {
        store.error(code, message, key: key)
    }

    func transport(_ error: any Error, _ operation: String, key: Key?, cancelled: Bool) -> CoordinationError {
        if let error = error as? CoordinationError { return store.attributed(error) }
        if cancelled || error is CancellationError {
            return make(.cancelled, "\(operation) was cancelled", key: key)
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            // The handshake failed: an agent certificate we do not trust or that names another host,
            // or the agent refused ours (verify_incoming). Trying again cannot help.
            return make(
                .connectionFailed, "\(operation): TLS with the Consul agent failed (\(ConnectFailure.describe(error)))",
                key: key)
        }
        if let http = error as? HTTPClientError {
            if http == .deadlineExceeded || http == .readTimeout {
                return make(.timeout, "\(operation) did not complete before its deadline", key: key)
            }
            if http == .cancelled {
                return make(.cancelled, "\(operation) was cancelled", key: key)
            }
            if http == .alreadyShutdown {
                return make(.storeClosed, "\(operation): the store was closed", key: key)
            }
            if http == .connectTimeout {
                return make(
                    .connectionFailed, "\(operation): cannot reach the Consul agent (no answer in time)", key: key)
            }
            return make(.connectionFailed, "\(operation): cannot talk to the Consul agent (\(http))", key: key)
        }
        return make(
            .connectionFailed, "\(operation): cannot reach the Consul agent (\(ConnectFailure.describe(error)))",
            key: key)
    }

    /// An answer that is not a success, by status and Consul's plain-text message.
    func status(_ response: ConsulResponse, _ operation: String, key: Key? = nil) -> CoordinationError {
        let text = String(response.text.prefix(300).filter { $0 != "\n" && $0 != "\r" })
        switch response.status {
        case 400 where text.lowercased().contains("session"):
            return make(.sessionExpired, "\(operation): \(text)", key: key)
        case 400:
            return make(.invalidArgument, "\(operation): Consul refused the request: \(text)", key: key)
        case 401:
            return make(.authenticationFailed, "\(operation): Consul rejected the ACL token", key: key)
        case 403 where text.contains("ACL not found"):
            return make(.authenticationFailed, "\(operation): Consul does not know the ACL token", key: key)
        case 403:
            return make(.permissionDenied, "\(operation): permission denied by Consul's ACLs (\(text))", key: key)
        case 404:
            return make(.keyNotFound, "\(operation): not found (\(text))", key: key)
        case 413:
            return make(.valueTooLarge, "\(operation): Consul refused the value as too large", key: key)
        case 500 where text.lowercased().contains("invalid session"):
            return make(.sessionExpired, "\(operation): \(text)", key: key)
        default:
            return make(.serverError, "\(operation) failed with HTTP \(response.status): \(text)", key: key)
        }
    }
}

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
