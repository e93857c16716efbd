import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// The thin I/O layer: one request to the v2 keys API with a deadline, its answer decoded.
struct V2Connection: Sendable {
    let http: HTTPClient
    /// `http://host:port`, or `https://` with TLS.
    let baseURL: String
    /// HTTP basic authentication for etcd v2's auth (`Basic base64(user:password)`), on every
    /// request; `nil` without credentials. Never logged or put in an error.
    let authorization: String?
    let errors: V2ErrorMapper
    /// The largest answer accepted (a recursive listing can be large).
    let maxResponseSize: Int

    enum Method: Sendable {
        case get, put, post, delete

        var http: HTTPMethod {
            switch self {
            case .get: .GET
            case .put: .PUT
            case .post: .POST
            case .delete: .DELETE
            }
        }
    }

    /// Sends one request. `query` goes in the URL; `value`, when given, in a form body (v2 reads
    /// both). Transport failures and deadlines become ``CoordinationError``s; etcd's own errors come
    /// back as ``V2Reply/failure(_:)`` for the caller to interpret.
    func send(
        _ method: Method,
        _ path: String,
        query: [(String, String)] = [],
        value: String? = nil,
        timeout: Duration,
        operation: String,
        key: Key? = nil
    ) async throws(CoordinationError) -> V2Reply {
        var url = baseURL + "/v2/keys" + path
        if !query.isEmpty {
            url += "?" + query.map { "\($0.0)=\(V2KeySpace.percentEncode($0.1))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method.http
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        if let value {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: "value=" + V2KeySpace.percentEncode(value)))
        }
        let milliseconds = max(
            1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        do {
            let response = try await http.execute(request, timeout: .milliseconds(milliseconds))
            let body = try await response.body.collect(upTo: maxResponseSize)
            let index = response.headers.first(name: "X-Etcd-Index").flatMap { UInt64($0) }
            return try V2Reply.decode(status: Int(response.status.code), etcdIndex: index, body: Array(buffer: body))
        } catch {
            throw errors.transport(error, operation, key: key)
        }
    }
}

/// Translates transport failures and v2 error codes into ``CoordinationError``s naming the backend
/// and endpoint.
struct V2ErrorMapper: Sendable {
    let store: StoreDescription

    func make(_ code: CoordinationError.Code, _ message: String, key: Key? = nil) -> CoordinationError {
        store.error(code, message, key: key)
    }

    func transport(_ error: any Error, _ operation: String, key: Key?) -> CoordinationError {
        if let error = error as? CoordinationError { return store.attributed(error) }
        if error is CancellationError || Task.isCancelled {
            return make(.cancelled, "\(operation) was cancelled", key: key)
        }
        if error is V2Unauthorized {
            return make(
                .authenticationFailed,
                "\(operation): etcd v2 refused the credentials (a wrong user or password, none given, or a role without access to this key: v2 answers all three with 401)",
                key: key)
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return make(
                .connectionFailed, "\(operation): TLS with the etcd member failed (\(ConnectFailure.describe(error)))",
                key: key)
        }
        if let error = error as? V2ProtocolError {
            return make(.protocolError, "\(operation): \(error.description)", key: key)
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return make(.timeout, "\(operation) did not complete before its deadline", key: key)
            case .cancelled:
                return make(.cancelled, "\(operation) was cancelled", key: key)
            case .connectTimeout:
                return make(
                    .connectionFailed, "\(operation): cannot reach the etcd member (no answer in time)", key: key)
            default:
                return make(
                    .connectionFailed, "\(operation): cannot reach the etcd member (\(ConnectFailure.describe(error)))",
                    key: key)
            }
        }
        if error is DecodingError {
            return make(.protocolError, "\(operation): etcd's answer could not be decoded", key: key)
        }
        return make(
            .connectionFailed, "\(operation): cannot reach the etcd member (\(ConnectFailure.describe(error)))",
            key: key)
    }

    /// The error for an etcd failure body, by v2 error code.
    func etcd(_ body: V2ErrorBody, _ operation: String, key: Key? = nil) -> CoordinationError {
        let detail = "etcd error \(body.errorCode) '\(body.message)'"
        switch body.errorCode {
        case V2ErrorCode.keyNotFound:
            return make(.keyNotFound, "\(operation): \(detail)", key: key)
        case V2ErrorCode.testFailed:
            return make(.revisionMismatch, "\(operation): \(detail) \(body.cause ?? "")", key: key)
        case V2ErrorCode.notFile:
            return make(
                .isADirectory, "\(operation): the key is a directory; a directory holds no value (\(detail))", key: key)
        case V2ErrorCode.notDirectory:
            return make(
                .notADirectory,
                "\(operation): '\(body.cause ?? "?")' is a key with a value, so it cannot have children (\(detail))",
                key: key)
        case V2ErrorCode.nodeExists:
            return make(.keyExists, "\(operation): \(detail)", key: key)
        case V2ErrorCode.directoryNotEmpty:
            return make(.isADirectory, "\(operation): the directory is not empty (\(detail))", key: key)
        case V2ErrorCode.rootReadOnly:
            return make(.permissionDenied, "\(operation): \(detail)", key: key)
        case V2ErrorCode.unauthorized:
            return make(.permissionDenied, "\(operation): \(detail)", key: key)
        case V2ErrorCode.eventIndexCleared:
            return make(.historyLost, "\(operation): \(detail)", key: key)
        case 200..<300:
            return make(.invalidArgument, "\(operation): \(detail)", key: key)
        default:
            return make(.serverError, "\(operation): \(detail)", key: key)
        }
    }
}
