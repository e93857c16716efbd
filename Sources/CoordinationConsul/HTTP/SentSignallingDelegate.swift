import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
import NIOCore
import NIOHTTP1
import Synchronization

/// Collects one answer like the async API does, and also says when the request has been written
/// out completely. A watch returns only once its first blocking query is on the wire, so that
/// writes made right after `watch()` returns find the query already waiting at the agent (fewer
/// coalesced changes).
final class SentSignallingDelegate: HTTPClientResponseDelegate, Sendable {
    typealias Response = ConsulResponse

    private struct State {
        var status = 0
        var index: UInt64?
        var body: [UInt8] = []
        var sent: (@Sendable () -> Void)?
    }

    private let state: Mutex<State>
    private let limit: Int

    init(limit: Int, sent: @escaping @Sendable () -> Void) {
        self.state = Mutex(State(sent: sent))
        self.limit = limit
    }

    func didSendRequest(task: HTTPClient.Task<ConsulResponse>) {
        let sent = state.withLock { state in
            defer { state.sent = nil }
            return state.sent
        }
        sent?()
    }

    func didReceiveHead(task: HTTPClient.Task<ConsulResponse>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        state.withLock { state in
            state.status = Int(head.status.code)
            state.index = head.headers.first(name: "X-Consul-Index").flatMap(UInt64.init)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<ConsulResponse>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let tooLarge: Bool = state.withLock { state in
            state.body.append(contentsOf: buffer.readableBytesView)
            return state.body.count > limit
        }
        if tooLarge { return task.eventLoop.makeFailedFuture(HTTPClientError.bodyLengthMismatch) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<ConsulResponse>) throws -> ConsulResponse {
        state.withLock { ConsulResponse(status: $0.status, index: $0.index, body: $0.body) }
    }
}

extension ConsulHTTP {
    /// As ``send(_:_:query:body:timeout:operation:key:)`` (GET only, no body), calling `sent` once
    /// the request is written out.
    func get(
        _ path: String,
        query: [(String, String?)],
        timeout: Duration,
        operation: String,
        key: Key?,
        sent: @escaping @Sendable () -> Void
    ) async throws(CoordinationError) -> ConsulResponse {
        let url = self.url(path, query: query)
        do {
            var headers = HTTPHeaders()
            if let token, !token.isEmpty { headers.add(name: "X-Consul-Token", value: token) }
            let request = try HTTPClient.Request(
                url: url, method: .GET, headers: headers, tlsConfiguration: tlsConfiguration)
            let delegate = SentSignallingDelegate(limit: 64 * 1024 * 1024, sent: sent)
            let task = client.execute(
                request: request, delegate: delegate, deadline: .now() + .nanoseconds(timeout.nanoseconds))
            return try await withTaskCancellationHandler {
                try await task.futureResult.get()
            } onCancel: {
                task.cancel()
            }
        } catch {
            throw errors.transport(error, operation, key: key, cancelled: Task.isCancelled)
        }
    }
}
