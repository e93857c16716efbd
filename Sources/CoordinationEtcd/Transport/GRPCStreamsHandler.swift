import NIOCore
import NIOHPACK
import NIOSSL

/// Who hears what happens on one gRPC call (a stream). Called on the connection's event loop.
protocol GRPCStreamObserver: AnyObject {
    /// One whole response message (without its prefix).
    func received(_ message: ByteBuffer)
    /// The call ended: nil for status OK, otherwise why.
    func finished(_ error: GRPCCallError?)
}

/// The id of a call's HTTP/2 stream (odd: the client opens them).
typealias GRPCStreamID = UInt32

/// Carries gRPC calls as HTTP/2 streams of one connection, directly on the connection's bytes.
///
/// It is the whole HTTP/2 client (RFC 9113) for what etcd's gRPC needs: the connection preface and
/// SETTINGS, a table of open streams (a call is a HEADERS frame and its DATA; the server answers
/// with HEADERS, DATA and trailers), HPACK decoding of the server's header blocks (NIOHPACK's
/// decoder; the requests' blocks are written without the dynamic table), flow control both ways,
/// PING answers, RST_STREAM and GOAWAY. A fault in the server's framing ends the connection with
/// GOAWAY and fails its calls. Everything a read or a call produces goes out in one write per
/// flush. Every method runs on the event loop.
final class GRPCStreamsHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The stream window this client advertises (SETTINGS_INITIAL_WINDOW_SIZE) and the size the
    /// connection window is raised to; both are topped up once half is used.
    static let streamWindow = 4 << 20
    static let connectionWindow = 16 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE as advertised; a header block (HEADERS and CONTINUATION) larger
    /// than `maximumHeaderBlock` ends the connection.
    static let maximumHeaderListSize = 1 << 16
    static let maximumHeaderBlock = 1 << 18
    static let initialSettings: [(HTTP2.Setting, UInt32)] = [
        (.enablePush, 0),
        (.initialWindowSize, UInt32(streamWindow)),
        (.maxHeaderListSize, UInt32(maximumHeaderListSize)),
    ]

    private final class Stream {
        let observer: any GRPCStreamObserver
        var reader: GRPCMessageReader
        var sawHeaders = false
        /// All of this side's data has been handed over, ending with END_STREAM.
        var sentEnd = false
        var unacknowledged = 0
        /// What the server still lets this stream send (its flow-control window).
        var sendWindow: Int
        /// Data waiting for window, and whether END_STREAM follows it.
        var pending: ByteBuffer?
        var pendingEnd = false

        init(observer: any GRPCStreamObserver, maximumMessageSize: Int, sendWindow: Int) {
            self.observer = observer
            self.reader = GRPCMessageReader(maximumMessageSize: maximumMessageSize)
            self.sendWindow = sendWindow
        }
    }

    /// "host:port" of the member, for `:authority` and messages.
    let authority: String
    private let maximumMessageSize: Int
    /// Called once, when the connection can no longer start calls (GOAWAY, closed, broken).
    private var onUnusable: ((GRPCStreamsHandler) -> Void)?
    private var context: ChannelHandlerContext?
    private var streams: [GRPCStreamID: Stream] = [:]
    private var nextStreamID: GRPCStreamID = 1
    private var connectionUnacknowledged = 0
    private(set) var isUsable = true
    private var isActive = false
    private var onActive: (() -> Void)?
    /// Set by any inbound bytes; the transport's liveness check reads and clears it.
    var heardFromServer = false

    // HTTP/2 connection state.
    private var frames = HTTP2.FrameReader()
    private var decoder = HPACKDecoder(
        allocator: ByteBufferAllocator(), maxDynamicTableSize: HPACKDecoder.maxDynamicTableSize,
        maxHeaderListSize: maximumHeaderBlock)
    /// A header block begun by HEADERS and not yet ended by END_HEADERS.
    private var partialHeaders: (stream: GRPCStreamID, endStream: Bool, block: ByteBuffer)?
    private var peerMaxFrameSize = HTTP2.defaultMaxFrameSize
    private var peerInitialWindow = HTTP2.defaultWindow
    private var peerMaxConcurrentStreams = Int.max
    private var connectionSendWindow = HTTP2.defaultWindow
    /// Streams with data waiting for window, in the order they began waiting.
    private var blocked: [GRPCStreamID] = []
    /// Frames not yet written: they go out at the next flush, at the latest when a read ends.
    private var outbound: ByteBuffer?

    init(authority: String, maximumMessageSize: Int, onUnusable: @escaping (GRPCStreamsHandler) -> Void) {
        self.authority = authority
        self.maximumMessageSize = maximumMessageSize
        self.onUnusable = onUnusable
    }

    var openStreams: Int { streams.count }

    // MARK: - Calls (from the transport, on the event loop)

    /// Starts a call of `path` (its HEADERS frame); nothing is flushed.
    func open(
        path: String,
        metadata: [(String, String)],
        timeout: Duration?,
        observer: any GRPCStreamObserver
    ) -> Result<GRPCStreamID, GRPCCallError> {
        guard isUsable, context != nil, nextStreamID <= HTTP2.maxStreamID else {
            return .failure(GRPCCallError(.unavailable, "the connection to \(authority) closed"))
        }
        guard streams.count < peerMaxConcurrentStreams else {
            return .failure(
                GRPCCallError(.unavailable, "\(authority) allows at most \(peerMaxConcurrentStreams) concurrent calls"))
        }
        let id = nextStreamID
        nextStreamID += 2
        streams[id] = Stream(observer: observer, maximumMessageSize: maximumMessageSize, sendWindow: peerInitialWindow)
        emit { buffer in
            HTTP2.writeHeaders(stream: id, endStream: false, maxFrameSize: self.peerMaxFrameSize, to: &buffer) {
                GRPCWire.writeRequestHeaders(
                    path: path, authority: self.authority, timeout: timeout, metadata: metadata, to: &$0)
            }
        }
        return .success(id)
    }

    /// Sends one framed message on `id`; `end` also closes the sending side. What the server's
    /// flow-control windows do not allow yet goes out when they open.
    func send(_ id: GRPCStreamID, _ message: ByteBuffer, end: Bool, flush: Bool) {
        guard let stream = streams[id], !stream.sentEnd else { return }
        stream.sentEnd = end
        stream.pendingEnd = end
        if var pending = stream.pending {
            var message = message
            pending.writeBuffer(&message)
            stream.pending = pending
        } else {
            stream.pending = message
            if !drain(id, stream) { blocked.append(id) }
        }
        if flush { self.flush() }
    }

    func flush() {
        guard let context, let frames = outbound else { return }
        outbound = nil
        context.writeAndFlush(wrapOutboundOut(frames), promise: nil)
    }

    /// Ends a call from this side: the server is told to stop (RST_STREAM CANCEL) and the observer is
    /// not called again.
    func cancel(_ id: GRPCStreamID) {
        guard removeStream(id) != nil else { return }
        emit { HTTP2.writeRSTStream(stream: id, code: .cancel, to: &$0) }
        flush()
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
        emit { HTTP2.writePing(0x6574_6364, ack: false, to: &$0) }
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
        // The preface, this client's SETTINGS and the connection window raised from HTTP/2's 64 KiB.
        // Calls may follow at once (RFC 9113 §3.4); until the server's SETTINGS arrive its limits
        // are HTTP/2's defaults.
        emit { buffer in
            buffer.writeBytes(HTTP2.preface)
            HTTP2.writeSettings(Self.initialSettings, to: &buffer)
            HTTP2.writeWindowUpdate(stream: 0, increment: Self.connectionWindow - HTTP2.defaultWindow, to: &buffer)
        }
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
        frames.append(unwrapInboundIn(data))
        do {
            while isUsable || !streams.isEmpty, let frame = try frames.next() {
                try process(frame)
            }
        } catch {
            fail(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if outbound != nil { flush() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        becomeUnusable()
        failAll(GRPCCallError(.unavailable, "the connection to \(authority) was lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let isTLS = error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
        close(GRPCCallError(.unavailable, "\(isTLS ? "TLS with" : "the connection to") \(authority) failed: \(error)"))
    }

    // MARK: - Inbound frames

    private func process(_ frame: HTTP2.Frame) throws(HTTP2.ConnectionError) {
        if let partial = partialHeaders, frame.type != HTTP2.FrameType.continuation.rawValue || frame.stream != partial.stream {
            throw HTTP2.ConnectionError(code: .protocolError, reason: "a header block was interrupted by another frame")
        }
        switch HTTP2.FrameType(rawValue: frame.type) {
        case .data:
            try receiveData(frame)
        case .headers:
            guard frame.stream != 0, frame.stream % 2 == 1, frame.stream < nextStreamID else {
                throw HTTP2.ConnectionError(code: .protocolError, reason: "HEADERS on stream \(frame.stream), which this client did not open")
            }
            let fragment = try HTTP2.unpadded(frame, priorityFields: true)
            if frame.has(HTTP2.Flag.endHeaders) {
                try receiveHeaders(frame.stream, block: fragment, endStream: frame.has(HTTP2.Flag.endStream))
            } else {
                partialHeaders = (frame.stream, frame.has(HTTP2.Flag.endStream), fragment)
            }
        case .continuation:
            guard var partial = partialHeaders else {
                throw HTTP2.ConnectionError(code: .protocolError, reason: "CONTINUATION without a header block")
            }
            var fragment = frame.payload
            guard partial.block.readableBytes + fragment.readableBytes <= Self.maximumHeaderBlock else {
                throw HTTP2.ConnectionError(code: .enhanceYourCalm, reason: "a header block larger than \(Self.maximumHeaderBlock) bytes")
            }
            partial.block.writeBuffer(&fragment)
            if frame.has(HTTP2.Flag.endHeaders) {
                partialHeaders = nil
                try receiveHeaders(partial.stream, block: partial.block, endStream: partial.endStream)
            } else {
                partialHeaders = partial
            }
        case .rstStream:
            guard frame.payload.readableBytes == 4, let raw = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt32.self)
            else { throw HTTP2.ConnectionError(code: .frameSizeError, reason: "an RST_STREAM frame of \(frame.payload.readableBytes) bytes") }
            guard frame.stream != 0 else { throw HTTP2.ConnectionError(code: .protocolError, reason: "RST_STREAM on stream 0") }
            let error: GRPCCallError
            switch HTTP2.ErrorCode(rawValue: raw) {
            case .refusedStream: error = GRPCCallError(.unavailable, "\(authority) refused the stream")
            case .cancel: error = GRPCCallError(.cancelled, "\(authority) cancelled the call")
            case .enhanceYourCalm: error = GRPCCallError(.resourceExhausted, "\(authority) asked to slow down")
            case let code: error = GRPCCallError(.internal, "\(authority) reset the stream (\(code))")
            }
            finish(frame.stream, error, resetIfOpen: false)
        case .settings:
            guard frame.stream == 0 else { throw HTTP2.ConnectionError(code: .protocolError, reason: "SETTINGS on a stream") }
            if frame.has(HTTP2.Flag.ack) {
                guard frame.payload.readableBytes == 0 else {
                    throw HTTP2.ConnectionError(code: .frameSizeError, reason: "a SETTINGS acknowledgement with a payload")
                }
                return
            }
            try apply(HTTP2.parseSettings(frame.payload))
            emit { HTTP2.writeSettingsAcknowledgement(to: &$0) }
        case .ping:
            guard frame.stream == 0 else { throw HTTP2.ConnectionError(code: .protocolError, reason: "PING on a stream") }
            guard frame.payload.readableBytes == 8, let payload = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self)
            else { throw HTTP2.ConnectionError(code: .frameSizeError, reason: "a PING of \(frame.payload.readableBytes) bytes") }
            if !frame.has(HTTP2.Flag.ack) {
                emit { HTTP2.writePing(payload, ack: true, to: &$0) }
                }
        case .goAway:
            guard frame.stream == 0 else { throw HTTP2.ConnectionError(code: .protocolError, reason: "GOAWAY on a stream") }
            var payload = frame.payload
            guard let last = payload.readInteger(as: UInt32.self), let raw = payload.readInteger(as: UInt32.self) else {
                throw HTTP2.ConnectionError(code: .frameSizeError, reason: "a GOAWAY of \(frame.payload.readableBytes) bytes")
            }
            let lastStreamID = last & HTTP2.maxStreamID
            let code = HTTP2.ErrorCode(rawValue: raw)
            becomeUnusable()
            // Calls the server never saw may be retried elsewhere; those it took finish here.
            let unseen = streams.keys.filter { $0 > lastStreamID }.sorted()
            for id in unseen {
                finish(id, GRPCCallError(.unavailable, "\(authority) is going away (\(code)) and did not take the call"), resetIfOpen: false)
            }
            closeIfDrained()
        case .windowUpdate:
            guard frame.payload.readableBytes == 4, let raw = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt32.self)
            else { throw HTTP2.ConnectionError(code: .frameSizeError, reason: "a WINDOW_UPDATE of \(frame.payload.readableBytes) bytes") }
            let increment = Int(raw & 0x7FFF_FFFF)
            if frame.stream == 0 {
                guard increment > 0 else { throw HTTP2.ConnectionError(code: .protocolError, reason: "a connection WINDOW_UPDATE of 0") }
                connectionSendWindow += increment
                guard connectionSendWindow <= HTTP2.maxWindow else {
                    throw HTTP2.ConnectionError(code: .flowControlError, reason: "the connection window grew past 2^31-1")
                }
                drainBlocked()
            } else if let stream = streams[frame.stream] {
                guard increment > 0, stream.sendWindow + increment <= HTTP2.maxWindow else {
                    reset(frame.stream, increment == 0 ? .protocolError : .flowControlError,
                          GRPCCallError(.internal, "\(authority) sent a bad WINDOW_UPDATE for the call"))
                    return
                }
                stream.sendWindow += increment
                if stream.pending != nil, drain(frame.stream, stream) { blocked.removeAll { $0 == frame.stream } }
            }
        case .pushPromise:
            throw HTTP2.ConnectionError(code: .protocolError, reason: "PUSH_PROMISE although this client disabled push")
        case .priority, nil:
            break  // PRIORITY carries nothing a client needs; unknown frame types are ignored (§4.1)
        }
    }

    private func receiveData(_ frame: HTTP2.Frame) throws(HTTP2.ConnectionError) {
        guard frame.stream != 0 else { throw HTTP2.ConnectionError(code: .protocolError, reason: "DATA on stream 0") }
        // The whole payload counts against the windows, padding included, even on a closed stream.
        let length = frame.payload.readableBytes
        connectionUnacknowledged += length
        if connectionUnacknowledged >= Self.connectionWindow / 2 {
            let increment = connectionUnacknowledged
            connectionUnacknowledged = 0
            emit { HTTP2.writeWindowUpdate(stream: 0, increment: increment, to: &$0) }
        }
        let data = try HTTP2.unpadded(frame, priorityFields: false)
        guard let stream = streams[frame.stream] else { return }
        let messages: [ByteBuffer]
        do {
            messages = try stream.reader.append(data)
        } catch {
            reset(frame.stream, .cancel, error)
            return
        }
        for message in messages {
            stream.observer.received(message)
        }
        if frame.has(HTTP2.Flag.endStream) {
            finish(frame.stream, GRPCCallError(.internal, "the server ended the call without trailers"))
            return
        }
        stream.unacknowledged += length
        if stream.unacknowledged >= Self.streamWindow / 2, streams[frame.stream] != nil {
            let increment = stream.unacknowledged
            stream.unacknowledged = 0
            emit { HTTP2.writeWindowUpdate(stream: frame.stream, increment: increment, to: &$0) }
        }
    }

    private func receiveHeaders(_ id: GRPCStreamID, block: ByteBuffer, endStream: Bool) throws(HTTP2.ConnectionError) {
        // Decoded even for a call already ended here: the block may change the HPACK table.
        var block = block
        let headers: HPACKHeaders
        do {
            headers = try decoder.decodeHeaders(from: &block)
        } catch {
            throw HTTP2.ConnectionError(code: .compressionError, reason: "cannot decode a header block: \(error)")
        }
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
            reset(id, .protocolError, GRPCCallError(.internal, "the server sent trailers that do not end the call"))
        } else if stream.reader.pendingBytes > 0 {
            finish(id, GRPCCallError(.internal, "the response ended inside a message"))
        } else {
            finish(id, GRPCWire.status(fromTrailers: headers))
        }
    }

    private func apply(_ settings: [(HTTP2.Setting, UInt32)]) throws(HTTP2.ConnectionError) {
        for (setting, value) in settings {
            switch setting {
            case .initialWindowSize:
                guard value <= HTTP2.maxWindow else {
                    throw HTTP2.ConnectionError(code: .flowControlError, reason: "SETTINGS_INITIAL_WINDOW_SIZE of \(value)")
                }
                // Applies to the open streams too (RFC 9113 §6.9.2); a window may go negative.
                let delta = Int(value) - peerInitialWindow
                peerInitialWindow = Int(value)
                for stream in streams.values {
                    stream.sendWindow += delta
                    guard stream.sendWindow <= HTTP2.maxWindow else {
                        throw HTTP2.ConnectionError(code: .flowControlError, reason: "a stream window grew past 2^31-1")
                    }
                }
            case .maxFrameSize:
                guard (HTTP2.defaultMaxFrameSize...16_777_215).contains(Int(value)) else {
                    throw HTTP2.ConnectionError(code: .protocolError, reason: "SETTINGS_MAX_FRAME_SIZE of \(value)")
                }
                peerMaxFrameSize = Int(value)
            case .maxConcurrentStreams:
                peerMaxConcurrentStreams = Int(value)
            case .enablePush, .headerTableSize, .maxHeaderListSize:
                // Push is off on this side; the request blocks never use the HPACK table; the
                // header list limit is advisory and the requests are small.
                break
            }
        }
        drainBlocked()
    }

    // MARK: - Plumbing

    /// Appends frames to what goes out at the next flush.
    private func emit(_ body: (inout ByteBuffer) -> Void) {
        if outbound == nil { outbound = context?.channel.allocator.buffer(capacity: 512) ?? ByteBuffer() }
        body(&outbound!)
    }

    /// Sends what `stream`'s pending data the windows allow; true once all of it (and END_STREAM,
    /// if asked for) has gone.
    private func drain(_ id: GRPCStreamID, _ stream: Stream) -> Bool {
        while var pending = stream.pending {
            if pending.readableBytes == 0, !stream.pendingEnd {
                stream.pending = nil
                break
            }
            let allowed = max(0, min(pending.readableBytes, peerMaxFrameSize, stream.sendWindow, connectionSendWindow))
            // An empty DATA frame (only END_STREAM) needs no window.
            guard allowed > 0 || pending.readableBytes == 0 else { return false }
            var chunk = pending.readSlice(length: allowed)!
            let last = pending.readableBytes == 0
            let endStream = last && stream.pendingEnd
            emit { buffer in
                HTTP2.writeFrameHeader(
                    length: allowed, type: .data, flags: endStream ? HTTP2.Flag.endStream : 0, stream: id, to: &buffer)
                buffer.writeBuffer(&chunk)
            }
            stream.sendWindow -= allowed
            connectionSendWindow -= allowed
            stream.pending = last ? nil : pending
            if endStream { stream.pendingEnd = false }
        }
        return true
    }

    private func drainBlocked() {
        guard !blocked.isEmpty else { return }
        blocked.removeAll { id in
            guard let stream = streams[id] else { return true }
            return drain(id, stream)
        }
    }

    private func removeStream(_ id: GRPCStreamID) -> Stream? {
        guard let stream = streams.removeValue(forKey: id) else { return nil }
        if stream.pending != nil { blocked.removeAll { $0 == id } }
        return stream
    }

    /// Ends a call with `error` after a fault on our side of it (the server is told to stop).
    private func reset(_ id: GRPCStreamID, _ code: HTTP2.ErrorCode, _ error: any Error) {
        guard let stream = removeStream(id) else { return }
        emit { HTTP2.writeRSTStream(stream: id, code: code, to: &$0) }
        stream.observer.finished(error as? GRPCCallError ?? GRPCCallError(.internal, "\(error)"))
        closeIfDrained()
    }

    private func finish(_ id: GRPCStreamID, _ error: GRPCCallError?, resetIfOpen: Bool = true) {
        guard let stream = removeStream(id) else { return }
        if resetIfOpen, !stream.sentEnd || stream.pending != nil {
            // The server finished first (a bidirectional stream it ended): close our side too.
            emit { HTTP2.writeRSTStream(stream: id, code: .cancel, to: &$0) }
        }
        stream.observer.finished(error)
        closeIfDrained()
    }

    /// A fault in the server's framing: GOAWAY, then every call fails and the connection closes.
    private func fail(_ error: HTTP2.ConnectionError) {
        guard context != nil, isUsable || !streams.isEmpty else { return }
        emit { HTTP2.writeGoAway(lastStream: 0, code: error.code, to: &$0) }
        flush()
        close(GRPCCallError(.unavailable, "HTTP/2 error from \(authority): \(error.reason) (\(error.code))"))
    }

    private func failAll(_ error: GRPCCallError) {
        let open = streams
        streams.removeAll()
        blocked.removeAll()
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
            if outbound != nil { flush() }
            context.close(promise: nil)
        }
    }
}
