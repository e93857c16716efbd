import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL

/// Who hears what happens on one gRPC call (a stream). Called on the connection's event loop.
protocol GRPCStreamObserver: AnyObject {
    /// One whole response message (without its prefix).
    func received(_ message: ByteBuffer)
    /// The call ended: nil for status OK, otherwise why.
    func finished(_ error: GRPCCallError?)
    /// The connection takes no new calls and will close once its calls are done: the member said
    /// GOAWAY after taking this call, or the connection's stream ids are running out. A call about
    /// to end may ignore this; a long-lived stream should move to the next connection now rather
    /// than hold this one open (until the member closes it by force, or for days).
    func connectionDraining()
}

extension GRPCStreamObserver {
    func connectionDraining() {}
}

/// The id of a call's HTTP/2 stream (odd: the client opens them).
typealias GRPCStreamID = HTTP2StreamID

/// Carries gRPC calls as HTTP/2 streams of one connection, above swift-nio-http2's
/// `NIOHTTP2Handler` (frame mode: no child channel per call).
///
/// `NIOHTTP2Handler` does HTTP/2 itself: the preface and SETTINGS, HPACK both ways, PING and
/// SETTINGS acknowledgements, outbound flow control (DATA waits for window and is split to the
/// peer's frame size) and the peer's limit on concurrent streams. This handler keeps the table of
/// calls: it opens a stream per call (odd ids, in order), turns response HEADERS, DATA and trailers
/// into messages and a status (``GRPCWire``), returns inbound flow-control credit, and stops taking
/// calls when the server says GOAWAY or the stream ids run low. Every method runs on the event loop.
final class GRPCStreamsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The stream window this client advertises (SETTINGS_INITIAL_WINDOW_SIZE) and the size the
    /// connection window is raised to; each is topped up once half of it is used.
    static let streamWindow = 4 << 20
    static let connectionWindow = 16 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE: the largest response header block accepted.
    static let maximumHeaderListSize = 1 << 16

    /// What `NIOHTTP2Handler` is set up with for an etcd member.
    ///
    /// The control-frame limit counts every PING and SETTINGS frame the server sends, answers to our
    /// own PINGs included. swift-nio-http2's default, 200 in 30 s, is meant for servers facing
    /// unknown clients: etcd's gRPC server (grpc-go) sends a bandwidth-estimation PING after request
    /// data whenever its previous one has been answered — up to one per request — so a busy store
    /// passed 200 within a second and lost its connection. Here the limit is 20,000 in any 1 s:
    /// ten times the request rate the etcd benchmark reaches on one connection, and still a bound
    /// on a member that floods. (The limiter keeps room for one timestamp per counted frame: 160 KB
    /// a connection at this count, which is why the window is short rather than the count large.)
    static func connectionConfiguration() -> NIOHTTP2Handler.ConnectionConfiguration {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maximumHeaderListSize),
        ]
        configuration.controlFrameRateLimit.maximumCount = 20_000
        configuration.controlFrameRateLimit.windowLength = .seconds(1)
        return configuration
    }

    /// The largest client stream id (2^31 − 1).
    static let maximumStreamID = Int(Int32.max)
    /// Once a stream id above this is handed out, the connection takes no new calls: the transport
    /// opens a new connection, and this one closes when its last call ends. 2^20 ids early, so that
    /// calls opened meanwhile never find the ids used up.
    static let retirementStreamID = maximumStreamID - (1 << 20)

    private final class Stream {
        let observer: any GRPCStreamObserver
        var reader: GRPCMessageReader
        var sawHeaders = false
        /// All of this side's data has been handed over, ending with END_STREAM.
        var sentEnd = false
        /// The stream's window is topped up for a message only once its observer has consumed it
        /// (``GRPCStreamsHandler/consumed(_:bytes:)``), not when it arrives.
        let creditOnConsume: Bool
        /// Bytes of messages handed to the observer and not consumed yet (`creditOnConsume` only).
        var held = 0
        /// The stream's inbound window as last reported by `NIOHTTP2Handler`.
        var window = GRPCStreamsHandler.streamWindow

        init(observer: any GRPCStreamObserver, maximumMessageSize: Int, creditOnConsume: Bool) {
            self.observer = observer
            self.reader = GRPCMessageReader(maximumMessageSize: maximumMessageSize)
            self.creditOnConsume = creditOnConsume
        }
    }

    /// "host:port" of the member, for `:authority` and messages.
    let authority: String
    /// `https` over TLS, otherwise `http`.
    private let scheme: String
    private let maximumMessageSize: Int
    private let retirementStreamID: Int
    /// Called once, when the connection can no longer start calls (GOAWAY, closed, broken, or its
    /// stream ids running out).
    private var onUnusable: ((GRPCStreamsHandler) -> Void)?
    private var context: ChannelHandlerContext?
    private var streams: [HTTP2StreamID: Stream] = [:]
    private var nextStreamID: Int
    private(set) var isUsable = true
    private var isActive = false
    private var onActive: (() -> Void)?
    private var needsFlush = false
    /// Set by any inbound frame; the transport's liveness check reads and clears it.
    var heardFromServer = false

    /// `firstStreamID` (odd) and `retirementStreamID` are settable so that tests can reach the end
    /// of the stream ids.
    init(
        authority: String,
        tls: Bool,
        maximumMessageSize: Int,
        firstStreamID: Int = 1,
        retirementStreamID: Int = GRPCStreamsHandler.retirementStreamID,
        onUnusable: @escaping (GRPCStreamsHandler) -> Void
    ) {
        precondition(firstStreamID > 0 && firstStreamID % 2 == 1 && firstStreamID <= Self.maximumStreamID)
        self.authority = authority
        self.scheme = tls ? "https" : "http"
        self.maximumMessageSize = maximumMessageSize
        self.nextStreamID = firstStreamID
        self.retirementStreamID = min(retirementStreamID, Self.maximumStreamID)
        self.onUnusable = onUnusable
    }

    var openStreams: Int { streams.count }

    // MARK: - Calls (from the transport, on the event loop)

    /// Starts a call of `path` (its HEADERS frame); nothing is flushed. With `creditOnConsume`
    /// the server may send at most one stream window (4 MiB) of messages the observer has not
    /// consumed yet: a slow reader holds the server back instead of growing this client's memory.
    func open(
        path: String,
        metadata: [(String, String)],
        timeout: Duration?,
        creditOnConsume: Bool = false,
        observer: any GRPCStreamObserver
    ) -> Result<GRPCStreamID, GRPCCallError> {
        guard isUsable, let context, nextStreamID <= Self.maximumStreamID else {
            return .failure(GRPCCallError(.unavailable, "the connection to \(authority) closed", kind: .notProcessed))
        }
        let id = HTTP2StreamID(nextStreamID)
        nextStreamID += 2
        streams[id] = Stream(
            observer: observer, maximumMessageSize: maximumMessageSize, creditOnConsume: creditOnConsume)
        let headers = GRPCWire.requestHeaders(
            path: path, scheme: scheme, authority: authority, timeout: timeout, metadata: metadata)
        context.write(
            wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: nil)
        needsFlush = true
        if nextStreamID > retirementStreamID {
            // The ids are running out: new calls go to a new connection; this one drains, and its
            // long-lived streams are told to move (after this call is set up: it may be one).
            becomeUnusable()
            context.eventLoop.assumeIsolated().execute { self.tellStreamsDraining() }
        }
        return .success(id)
    }

    /// Sends one framed message on `id`; `end` also closes the sending side. What the server's
    /// flow-control windows do not allow yet, `NIOHTTP2Handler` sends when they open.
    func send(_ id: GRPCStreamID, _ message: ByteBuffer, end: Bool, flush: Bool) {
        guard let context, let stream = streams[id], !stream.sentEnd else { return }
        stream.sentEnd = end
        let frame = HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(message), endStream: end)))
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
        if flush { self.flush() }
    }

    func flush() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    /// Ends a call from this side: the server is told to stop (RST_STREAM CANCEL) and the observer is
    /// not called again.
    func cancel(_ id: GRPCStreamID) {
        guard streams.removeValue(forKey: id) != nil else { return }
        write(HTTP2Frame(streamID: id, payload: .rstStream(.cancel)))
        flush()
        closeIfDrained()
    }

    /// The observer of `id` has consumed `bytes` of the messages it was handed (each message counts
    /// its length plus gRPC's 5-byte prefix): the window may be topped up for them.
    func consumed(_ id: GRPCStreamID, bytes: Int) {
        guard let stream = streams[id], stream.creditOnConsume else { return }
        stream.held = max(stream.held - bytes, 0)
        topUp(id, stream)
        flush()
    }

    /// Closes the connection; every open call fails with `reason`.
    func close(_ reason: GRPCCallError) {
        becomeUnusable()
        failAll(reason)
        context?.close(promise: nil)
    }

    /// Sends a PING (the answer shows up as `heardFromServer`).
    func ping() {
        write(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 0x6574_6364), ack: false)))
        flush()
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Runs `body` once the HTTP/2 preface has gone out; a call written before that would be refused.
    func whenActive(_ body: @escaping () -> Void) {
        if isActive { body() } else { onActive = body }
    }

    func channelActive(context: ChannelHandlerContext) {
        // `NIOHTTP2Handler`, before this handler, has written the preface and SETTINGS. Raise the
        // connection window from HTTP/2's 64 KiB; calls may follow at once (RFC 9113 §3.4).
        let increment = Self.connectionWindow - 65_535
        write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment)))
        flush()
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
        switch frame.payload {
        case .headers(let headers):
            receiveHeaders(frame.streamID, headers.headers, endStream: headers.endStream)
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return }
            receiveData(frame.streamID, bytes, endStream: data.endStream)
        case .rstStream(let code):
            let error: GRPCCallError
            switch code {
            case .refusedStream:
                // RFC 9113 §8.7: a refused stream was not processed at all.
                error = GRPCCallError(.unavailable, "\(authority) refused the stream", kind: .notProcessed)
            case .cancel: error = GRPCCallError(.cancelled, "\(authority) cancelled the call")
            case .enhanceYourCalm: error = GRPCCallError(.resourceExhausted, "\(authority) asked to slow down")
            default: error = GRPCCallError(.internal, "\(authority) reset the stream (\(code))")
            }
            finish(frame.streamID, error, resetIfOpen: false)
        case .goAway(let lastStreamID, let code, _):
            becomeUnusable()
            // Calls above the last stream id were never processed (RFC 9113 §6.8): they may be sent
            // again elsewhere. Those the server took finish here, except that long-lived streams
            // are told to move now.
            let unseen = streams.keys.filter { $0 > lastStreamID }.sorted()
            for id in unseen {
                finish(
                    id,
                    GRPCCallError(
                        .unavailable, "\(authority) is going away (\(code)) and did not take the call",
                        kind: .notProcessed),
                    resetIfOpen: false)
            }
            tellStreamsDraining()
            closeIfDrained()
        default:
            break  // SETTINGS, PING and their acknowledgements: NIOHTTP2Handler answers them
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let update = event as? NIOHTTP2WindowUpdatedEvent, let window = update.inboundWindowSize {
            returnCredit(update.streamID, window: window)
        } else if let closed = event as? StreamClosedEvent, streams[closed.streamID] != nil {
            // Closed by NIOHTTP2Handler itself (a fault on the stream it reset, or a GOAWAY).
            let reason = closed.reason.map { "\($0)" } ?? "no reason given"
            finish(
                closed.streamID, GRPCCallError(.unavailable, "the stream to \(authority) was closed (\(reason))"),
                resetIfOpen: false)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        becomeUnusable()
        failAll(GRPCCallError(.unavailable, "the connection to \(authority) was lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A write to a stream that has just ended (the server's RST_STREAM or trailers crossing our
        // DATA) fails that write only; the connection is fine.
        if error is NIOHTTP2Errors.NoSuchStream || error is NIOHTTP2Errors.StreamClosed { return }
        let isTLS = error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
        close(GRPCCallError(.unavailable, "\(isTLS ? "TLS with" : "the connection to") \(authority) failed: \(error)"))
    }

    // MARK: - Inbound

    private func receiveData(_ id: HTTP2StreamID, _ data: ByteBuffer, endStream: Bool) {
        guard let stream = streams[id] else { return }
        let messages: [ByteBuffer]
        do {
            messages = try stream.reader.append(data)
        } catch {
            reset(id, error)
            return
        }
        for message in messages {
            if stream.creditOnConsume { stream.held += GRPCWire.prefixLength + message.readableBytes }
            stream.observer.received(message)
        }
        if endStream {
            finish(id, GRPCCallError(.internal, "the server ended the call without trailers"))
        }
    }

    private func receiveHeaders(_ id: HTTP2StreamID, _ headers: HPACKHeaders, endStream: Bool) {
        guard let stream = streams[id] else { return }
        if !stream.sawHeaders {
            stream.sawHeaders = true
            switch GRPCWire.checkResponseHead(headers, endStream: endStream) {
            case .finished(let status):
                finish(id, status)
            case .messagesFollow where endStream:
                finish(id, GRPCCallError(.internal, "the server ended the call without a status"))
            case .messagesFollow:
                break
            }
        } else if !endStream {
            reset(id, GRPCCallError(.internal, "the server sent trailers that do not end the call"))
        } else if stream.reader.pendingBytes > 0 {
            finish(id, GRPCCallError(.internal, "the response ended inside a message"))
        } else {
            finish(id, GRPCWire.status(fromTrailers: headers))
        }
    }

    /// Tops a window back up once half of it is used: the connection's while the connection is
    /// open (as data arrives: one slow stream must not stall the others), a stream's while its
    /// call is (as data arrives, or for a `creditOnConsume` stream as its messages are consumed).
    private func returnCredit(_ id: HTTP2StreamID, window: Int) {
        if id == .rootStream {
            guard window <= Self.connectionWindow / 2 else { return }
            write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: Self.connectionWindow - window)))
        } else if let stream = streams[id] {
            stream.window = window
            topUp(id, stream)
        }
    }

    /// Returns a stream's credit for what has been consumed, once that is half its window.
    private func topUp(_ id: HTTP2StreamID, _ stream: Stream) {
        let returnable = Self.streamWindow - stream.window - stream.held
        guard returnable >= Self.streamWindow / 2 else { return }
        stream.window += returnable
        write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: returnable)))
    }

    // MARK: - Plumbing

    private func write(_ frame: HTTP2Frame) {
        guard let context else { return }
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    /// Ends a call with `error` after a fault on our side of it (the server is told to stop).
    private func reset(_ id: HTTP2StreamID, _ error: any Error) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        write(HTTP2Frame(streamID: id, payload: .rstStream(.cancel)))
        stream.observer.finished(error as? GRPCCallError ?? GRPCCallError(.internal, "\(error)"))
        closeIfDrained()
    }

    /// Ends a call. With `resetIfOpen`, a call whose sending side is still open (a bidirectional
    /// stream the server ended first) is reset, so that the stream is closed on both sides.
    private func finish(_ id: HTTP2StreamID, _ error: GRPCCallError?, resetIfOpen: Bool = true) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        if resetIfOpen, !stream.sentEnd { write(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))) }
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

    /// Tells every open call that the connection is draining, in stream order (a long-lived one
    /// then moves; it may end its stream while being told).
    private func tellStreamsDraining() {
        for observer in streams.sorted(by: { $0.key < $1.key }).map(\.value.observer) {
            observer.connectionDraining()
        }
    }

    /// A connection that takes no new calls is closed once its last call is done.
    private func closeIfDrained() {
        if !isUsable, streams.isEmpty, let context {
            flush()
            context.close(promise: nil)
        }
    }
}
