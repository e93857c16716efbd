import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Synchronization
import Testing

/// An HTTP/2 server on 127.0.0.1 that plays one way an etcd member ends or sheds calls. It takes
/// every stream; what it does with the first key/value calls (paths under `/etcdserverpb.KV/`)
/// is the `behaviour`; other streams (the store's watch and keep-alive streams) it keeps open
/// without a word.
final class SheddingMember: Sendable {
    enum Behaviour: Sendable {
        /// Refuses the first `count` key/value calls (RST_STREAM REFUSED_STREAM) and answers later
        /// ones with an empty message and status OK.
        case refuse(count: Int)
        /// Answers the first key/value call with GOAWAY naming the stream before it (the call was
        /// not taken), then closes the connection.
        case goAwayNotTaken
        /// Answers the first key/value call with GOAWAY naming that call's stream (taken, never
        /// answered), then closes the connection.
        case goAwayTaken
        /// Closes the connection when the first key/value call arrives, without a word.
        case dropConnection
        /// Answers the first `count` key/value calls as an overloaded etcd does before proposing
        /// them (RESOURCE_EXHAUSTED, "etcdserver: too many requests"), later ones with an empty
        /// message and status OK; `message` replaces etcd's text.
        case overloaded(count: Int, message: String = "etcdserver: too many requests")
        /// Says GOAWAY (last stream id 2^31 − 1: every call so far taken, as grpc-go's graceful
        /// stop first does) this long after the connection opens, then holds the connection open
        /// and answers nothing more.
        case goAwayAfter(Duration)
    }

    let behaviour: Behaviour
    private let seen = Mutex<[String]>([])
    private let channel = Mutex<(any Channel)?>(nil)

    init(_ behaviour: Behaviour) {
        self.behaviour = behaviour
    }

    /// The key/value calls received so far, by path.
    var keyValueCalls: [String] { seen.withLock { $0 } }

    func start() async throws -> Endpoint {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
                    try channel.pipeline.syncOperations.addHandler(Handler(member: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLock { $0 = server }
        return Endpoint(host: "127.0.0.1", port: server.localAddress!.port!)
    }

    func stop() async {
        try? await channel.withLock { $0 }?.close()
    }

    /// Records a key/value call; returns how many came before it.
    fileprivate func record(_ path: String) -> Int {
        seen.withLock { calls in
            calls.append(path)
            return calls.count - 1
        }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        typealias OutboundOut = HTTP2Frame
        let member: SheddingMember

        init(member: SheddingMember) { self.member = member }

        func channelActive(context: ChannelHandlerContext) {
            if case .goAwayAfter(let delay) = member.behaviour {
                let channel = context.channel
                let goAway = HTTP2Frame(
                    streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
                channel.eventLoop.scheduleTask(
                    in: .nanoseconds(
                        Int64(delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000))
                ) {
                    channel.writeAndFlush(goAway, promise: nil)
                }
            }
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            guard case .headers(let headers) = frame.payload,
                let path = headers.headers.first(name: ":path"), path.hasPrefix("/etcdserverpb.KV/")
            else { return }
            let earlier = member.record(path)
            let id = frame.streamID
            switch member.behaviour {
            case .refuse(let count) where earlier < count:
                context.writeAndFlush(
                    wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.refusedStream))), promise: nil)
            case .overloaded(let count, let message) where earlier < count:
                let status = HPACKHeaders([
                    (":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "8"),
                    ("grpc-message", message),
                ])
                context.writeAndFlush(
                    wrapOutboundOut(
                        HTTP2Frame(streamID: id, payload: .headers(.init(headers: status, endStream: true)))),
                    promise: nil)
            case .refuse, .overloaded:
                let head = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")])
                let empty = ByteBuffer(bytes: [0, 0, 0, 0, 0])
                context.write(
                    wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: head)))), promise: nil)
                context.write(
                    wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(empty))))),
                    promise: nil)
                let trailers = HPACKHeaders([("grpc-status", "0")])
                context.writeAndFlush(
                    wrapOutboundOut(
                        HTTP2Frame(streamID: id, payload: .headers(.init(headers: trailers, endStream: true)))),
                    promise: nil)
            case .dropConnection:
                context.close(promise: nil)
            case .goAwayAfter:
                break
            case .goAwayNotTaken, .goAwayTaken:
                let last = member.behaviour.isTaken ? id : HTTP2StreamID(max(Int(id) - 2, 0))
                let goAway = HTTP2Frame(
                    streamID: .rootStream, payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil))
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(goAway)).whenComplete { _ in
                    // A member draining its calls: the connection goes a moment later.
                    channel.eventLoop.scheduleTask(in: .milliseconds(50)) { channel.close(promise: nil) }
                }
            }
        }
    }
}

extension SheddingMember.Behaviour {
    var isTaken: Bool {
        if case .goAwayTaken = self { return true }
        return false
    }
}

/// Issue 15: calls a member provably never processed are sent again once, transparently, within
/// their deadline; calls it may have processed are not. Each test puts a `SheddingMember` first
/// in the store's endpoints and the real etcd member second.
@Suite(
    "etcd: calls a member never processed are retried", .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS")
)
struct EtcdRetryTests {
    /// Starts a member that behaves as `behaviour`, runs `body` with a store whose first endpoint
    /// is that member (the real one second) and a store on the real member alone, then stops them
    /// all; returns the member, for the calls it saw.
    @discardableResult
    static func withMember(
        _ behaviour: SheddingMember.Behaviour,
        _ body: (_ store: any KeyValueStore, _ real: any KeyValueStore) async throws -> Void
    ) async throws -> SheddingMember {
        let member = SheddingMember(behaviour)
        let first = try await member.start()
        let real = try #require(EtcdTestServer.endpoints)
        var logger = Logger(label: "etcd-retry")
        logger.logLevel = .error
        let stores = [
            try EtcdStore(configuration: .init(endpoints: [first] + real, requestTimeout: .seconds(5), logger: logger)),
            try EtcdStore(configuration: .init(endpoints: real, requestTimeout: .seconds(5), logger: logger)),
        ]
        do {
            try await withRunning(stores) { stores in try await body(stores[0], stores[1]) }
        } catch {
            await member.stop()
            throw error
        }
        await member.stop()
        return member
    }

    static func key(_ name: String) throws -> Key {
        try Key("retry/\(name)-\(UInt64.random(in: 0 ... .max))")
    }

    @Test(
        "a refused stream (REFUSED_STREAM) is sent again once on the same connection; refused twice, the caller hears")
    func refusedStreamIsRetriedOnce() async throws {
        let once = try await Self.withMember(.refuse(count: 1)) { store, _ in
            let entry = try await withDeadline(.seconds(10), "a get refused once") {
                try await store.get(try Self.key("once"))
            }
            #expect(entry == nil, "the member's empty answer to the second attempt")
        }
        #expect(once.keyValueCalls == ["/etcdserverpb.KV/Range", "/etcdserverpb.KV/Range"])

        let always = try await Self.withMember(.refuse(count: .max)) { store, _ in
            do {
                _ = try await withDeadline(.seconds(10), "a get refused twice") {
                    try await store.get(try Self.key("twice"))
                }
                Issue.record("a call refused twice succeeded")
            } catch let error as CoordinationError {
                #expect(error.code == .connectionFailed, "\(error)")
            }
        }
        #expect(always.keyValueCalls.count == 2, "sent once more, not more: \(always.keyValueCalls)")
    }

    @Test("a put above GOAWAY's last stream id is sent again on the next member, and takes effect once")
    func putNotTakenBeforeGoAwayIsRetried() async throws {
        let key = try Self.key("not-taken")
        let member = try await Self.withMember(.goAwayNotTaken) { store, real in
            try await withDeadline(.seconds(10), "a put the leaving member did not take") {
                try await store.put(key, Array("v".utf8))
            }
            let entry = try await real.get(key)
            #expect(entry?.value == Array("v".utf8))
            #expect(entry?.createRevision == entry?.modifyRevision, "written once")
            try await real.delete(key)
        }
        #expect(member.keyValueCalls == ["/etcdserverpb.KV/Put"])
    }

    @Test("a put the member took before GOAWAY and never answered fails to the caller and is not sent again")
    func putTakenBeforeGoAwayIsNotRetried() async throws {
        let key = try Self.key("taken")
        let member = try await Self.withMember(.goAwayTaken) { store, real in
            do {
                try await withDeadline(.seconds(10), "a put the leaving member took") {
                    try await store.put(key, Array("v".utf8))
                }
                Issue.record("a put whose outcome is unknown was reported done")
            } catch let error as CoordinationError {
                #expect(error.code == .connectionFailed, "\(error)")
            }
            #expect(try await real.get(key) == nil, "not sent again to the next member")
            // The store goes on, on the next member.
            try await store.put(key, Array("w".utf8))
            #expect(try await real.get(key)?.value == Array("w".utf8))
            try await real.delete(key)
        }
        #expect(member.keyValueCalls == ["/etcdserverpb.KV/Put"])
    }

    @Test("a read whose connection breaks under it is sent again on the next member")
    func readOnBrokenConnectionIsRetried() async throws {
        let key = try Self.key("read")
        let member = try await Self.withMember(.dropConnection) { store, real in
            try await real.put(key, Array("v".utf8))
            let entry = try await withDeadline(.seconds(10), "a get whose connection broke") {
                try await store.get(key)
            }
            #expect(entry?.value == Array("v".utf8))
            try await real.delete(key)
        }
        #expect(member.keyValueCalls == ["/etcdserverpb.KV/Range"])
    }

    @Test("GOAWAY from a member that then holds its connection open: the watch and keep-alive streams move at once")
    func longLivedStreamsLeaveAMemberSayingGoAway() async throws {
        let key = try Self.key("leaving")
        try await Self.withMember(.goAwayAfter(.milliseconds(500))) { store, real in
            // The store opened its watch and keep-alive streams on the first member at once; that
            // member says GOAWAY half a second later. Calls from then on go to the next member.
            try await Task.sleep(for: .seconds(1))
            let session = try await withDeadline(.seconds(10), "a session") {
                try await store.makeSession(ttl: .seconds(3))
            }
            let events = try await withDeadline(.seconds(10), "a watch opened across the GOAWAY") {
                try await store.watch(key)
            }
            try await real.put(key, Array("v".utf8))
            let seen = try await withDeadline(.seconds(10), "the put on the watch") { try await collect(events, 2) }
            guard case .put(let entry) = seen[1] else {
                Issue.record("expected the put, got \(seen)")
                return
            }
            #expect(entry.value == Array("v".utf8))
            // Two TTLs: kept alive only if the keep-alive stream left the leaving member.
            try await Task.sleep(for: .seconds(6))
            #expect(session.isActive, "the session outlived its stream's member (\(session.state))")
            try await session.close()
            try await real.delete(key)
        }
    }

    @Test(
        "a put etcd refused as \"too many requests\" (before proposing it) is sent again once, a moment later; other overload answers are not"
    )
    func tooManyRequestsIsRetriedOnce() async throws {
        let once = try await Self.withMember(.overloaded(count: 1)) { store, _ in
            try await withDeadline(.seconds(10), "a put refused once") {
                try await store.put(try Self.key("overloaded"), Array("v".utf8))
            }
        }
        #expect(once.keyValueCalls == ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Put"])

        let other = try await Self.withMember(
            .overloaded(count: 1, message: "etcdserver: mvcc: database space exceeded")
        ) { store, _ in
            do {
                try await store.put(try Self.key("quota"), Array("v".utf8))
                Issue.record("a put refused for another reason was sent again")
            } catch let error as CoordinationError {
                #expect(error.code != .connectionFailed, "\(error)")
            }
        }
        #expect(other.keyValueCalls == ["/etcdserverpb.KV/Put"])
    }
}
