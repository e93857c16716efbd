import NIOCore
import NIOHPACK
import NIOHTTP2

/// Who hears what happens on one gRPC call (a stream). Called on the connection's event loop.
protocol GRPCStreamObserver: AnyObject {
    /// One whole response message (without its prefix).
    func received(_ message: ByteBuffer)
    /// The call ended: nil for status OK, otherwise why.
    func finished(_ error: GRPCCallError?)
}

/// Carries gRPC calls as HTTP/2 streams of one connection, directly on the connection's channel.
///
/// It sits behind `NIOHTTP2Handler` (used without a stream multiplexer) and keeps a table of the
/// open streams: a call is a HEADERS frame, its DATA and, from the server, HEADERS, DATA and
/// trailers — no child channel, no async bridge and no extra allocation per call beyond the
/// frames. It also does the inbound flow control that a multiplexer would do (WINDOW_UPDATE as data
/// arrives: messages are handed on at once, never held back). Every method runs on the event loop.
final class GRPCStreamsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The stream window this client advertises (SETTINGS_INITIAL_WINDOW_SIZE) and the size the
    /// connection window is raised to; both are topped up once half is used.
    static let streamWindow = 4 << 20
    static let connectionWindow = 16 << 20
    static var initialSettings: HTTP2Settings {
        [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
        ]
    }

    private final class Stream {
        let observer: any GRPCStreamObserver
        var reader: GRPCMessageReader
        var sawHeaders = false
        var sentEnd = false
        var unacknowledged = 0

        init(observer: any GRPCStreamObserver, maximumMessageSize: Int) {
            self.observer = observer
            self.reader = GRPCMessageReader(maximumMessageSize: maximumMessageSize)
        }
    }

    /// "host:port" of the member, for `:authority` and messages.
    let authority: String
    private let maximumMessageSize: Int
    /// Called once, when the connection can no longer start calls (GOAWAY, closed, broken).
    private var onUnusable: ((GRPCStreamsHandler) -> Void)?
    private var context: ChannelHandlerContext?
    private var streams: [HTTP2StreamID: Stream] = [:]
    private var nextStreamID = HTTP2StreamID(1)
    private var connectionUnacknowledged = 0
    private var connectionWindowRaised = false
    private var needsFlush = false
    private(set) var isUsable = true
    private var isActive = false
    private var onActive: (() -> Void)?
    /// Set by any inbound frame; the transport's liveness check reads and clears it.
    var heardFromServer = false

    init(authority: String, maximumMessageSize: Int, onUnusable: @escaping (GRPCStreamsHandler) -> Void) {
        self.authority = authority
        self.maximumMessageSize = maximumMessageSize
        self.onUnusable = onUnusable
    }

    var openStreams: Int { streams.count }

    // MARK: - Calls (from the transport, on the event loop)

    /// Starts a call of `path`; nil if this connection no longer takes calls. Nothing is flushed.
    func open(
        path: String,
        metadata: [(String, String)],
        timeout: Duration?,
        observer: any GRPCStreamObserver
    ) -> HTTP2StreamID? {
        guard isUsable, let context, nextStreamID < HTTP2StreamID.maxID else { return nil }
        let id = nextStreamID
        nextStreamID = nextStreamID.advanced(by: 2)
        streams[id] = Stream(observer: observer, maximumMessageSize: maximumMessageSize)
        let headers = GRPCWire.requestHeaders(path: path, authority: authority, timeout: timeout, metadata: metadata)
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenFailure { [weak self] error in
            guard let self else { return }
            self.finish(id, GRPCCallError(.unavailable, "could not start the call on \(self.authority): \(error)"))
        }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: promise)
        return id
    }

    /// Sends one framed message on `id`; `end` also closes the sending side.
    func send(_ id: HTTP2StreamID, _ message: ByteBuffer, end: Bool, flush: Bool) {
        guard let context, let stream = streams[id], !stream.sentEnd else { return }
        stream.sentEnd = end
        context.write(
            wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(message), endStream: end)))),
            promise: nil)
        if flush { context.flush() }
    }

    func flush() {
        context?.flush()
    }

    /// Ends a call from this side: the server is told to stop (RST_STREAM CANCEL) and the observer is
    /// not called again.
    func cancel(_ id: HTTP2StreamID) {
        guard streams.removeValue(forKey: id) != nil, let context else { return }
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))), promise: nil)
        closeIfDrained()
    }

    /// Closes the connection; every open call fails with `reason`.
    func close(_ reason: GRPCCallError) {
        becomeUnusable()
        failAll(reason)
        context?.close(promise: nil)
    }

    /// Sends a PING (the answer shows up as `heardFromServer`).
    func ping() {
        guard let context else { return }
        context.writeAndFlush(
            wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 0x6574_6364), ack: false))),
            promise: nil)
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Runs `body` once the HTTP/2 preface has gone out (the handler in front of this one sends it
    /// when the connection becomes active); a call written before that would be refused.
    func whenActive(_ body: @escaping () -> Void) {
        if isActive { body() } else { onActive = body }
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        context.fireChannelActive()
        if let onActive {
            self.onActive = nil
            onActive()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heardFromServer = true
        let frame = unwrapInboundIn(data)
        if !connectionWindowRaised {
            // After the server's preface: raise the connection window from HTTP/2's 64 KiB.
            connectionWindowRaised = true
            write(.rootStream, .windowUpdate(windowSizeIncrement: Self.connectionWindow - 65_535))
        }
        switch frame.payload {
        case .headers(let headers):
            guard let stream = streams[frame.streamID] else { return }
            if !stream.sawHeaders {
                stream.sawHeaders = true
                switch GRPCWire.checkResponseHead(headers.headers, endStream: headers.endStream) {
                case .finished(let status):
                    finish(frame.streamID, status)
                case .messagesFollow where headers.endStream:
                    finish(frame.streamID, GRPCCallError(.internal, "the server ended the call without a status"))
                case .messagesFollow:
                    break
                }
            } else if stream.reader.pendingBytes > 0 {
                finish(frame.streamID, GRPCCallError(.internal, "the response ended inside a message"))
            } else {
                finish(frame.streamID, GRPCWire.status(fromTrailers: headers.headers))
            }
        case .data(let payload):
            guard case .byteBuffer(let bytes) = payload.data else { return }
            let length = bytes.readableBytes + (payload.paddingBytes ?? 0)
            connectionUnacknowledged += length
            if connectionUnacknowledged >= Self.connectionWindow / 2 {
                write(.rootStream, .windowUpdate(windowSizeIncrement: connectionUnacknowledged))
                connectionUnacknowledged = 0
            }
            guard let stream = streams[frame.streamID] else { return }
            let messages: [ByteBuffer]
            do {
                messages = try stream.reader.append(bytes)
            } catch {
                reset(frame.streamID, error)
                return
            }
            for message in messages {
                stream.observer.received(message)
            }
            if payload.endStream {
                finish(frame.streamID, GRPCCallError(.internal, "the server ended the call without trailers"))
                return
            }
            stream.unacknowledged += length
            if stream.unacknowledged >= Self.streamWindow / 2, streams[frame.streamID] != nil {
                write(frame.streamID, .windowUpdate(windowSizeIncrement: stream.unacknowledged))
                stream.unacknowledged = 0
            }
        case .rstStream(let code):
            let error: GRPCCallError
            switch code {
            case .refusedStream: error = GRPCCallError(.unavailable, "\(authority) refused the stream")
            case .cancel: error = GRPCCallError(.cancelled, "\(authority) cancelled the call")
            case .enhanceYourCalm: error = GRPCCallError(.resourceExhausted, "\(authority) asked to slow down")
            default: error = GRPCCallError(.internal, "\(authority) reset the stream (\(code))")
            }
            finish(frame.streamID, error, resetIfOpen: false)
        case .goAway(let lastStreamID, let code, _):
            becomeUnusable()
            // Calls the server never saw may be retried elsewhere; those it took finish here.
            let unseen = streams.keys.filter { $0 > lastStreamID }
            for id in unseen {
                finish(id, GRPCCallError(.unavailable, "\(authority) is going away (\(code)) and did not take the call"), resetIfOpen: false)
            }
            closeIfDrained()
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        becomeUnusable()
        failAll(GRPCCallError(.unavailable, "the connection to \(authority) was lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            reset(streamError.streamID, GRPCCallError(.internal, "protocol error on the call: \(streamError.baseError)"))
            return
        }
        close(GRPCCallError(.unavailable, "the connection to \(authority) failed: \(error)"))
    }

    // MARK: - Plumbing

    private func write(_ id: HTTP2StreamID, _ payload: HTTP2Frame.FramePayload) {
        context?.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
        needsFlush = true
    }

    /// Ends a call with `error` after a fault on our side of it (the server is told to stop).
    private func reset(_ id: HTTP2StreamID, _ error: GRPCCallError) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        write(id, .rstStream(.cancel))
        stream.observer.finished(error)
        closeIfDrained()
    }

    private func finish(_ id: HTTP2StreamID, _ error: GRPCCallError?, resetIfOpen: Bool = true) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        if resetIfOpen, !stream.sentEnd {
            // The server finished first (a bidirectional stream it ended): close our side too.
            write(id, .rstStream(.cancel))
        }
        stream.observer.finished(error)
        closeIfDrained()
    }

    private func failAll(_ error: GRPCCallError) {
        let open = streams
        streams.removeAll()
        for (_, stream) in open.sorted(by: { $0.key < $1.key }) {
            stream.observer.finished(error)
        }
    }

    private func becomeUnusable() {
        isUsable = false
        if let onUnusable {
            self.onUnusable = nil
            onUnusable(self)
        }
    }

    /// A connection that takes no new calls is closed once its last call is done.
    private func closeIfDrained() {
        if !isUsable, streams.isEmpty, let context {
            context.close(promise: nil)
        }
    }
}
