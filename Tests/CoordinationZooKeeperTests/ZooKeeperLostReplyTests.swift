import Coordination
import CoordinationCore
import CoordinationTestKit
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import CoordinationZooKeeper

/// Replies lost to a broken connection: a proxy between the client and the real server forwards a
/// request to the server and then cuts the connection before the reply comes back. The session
/// resumes through the proxy. For a create (the hard case), the client must find its contender by
/// its uuid (Curator's protected name) instead of creating a second one; a read is sent again.
@Suite(
    "ZooKeeper lost replies",
    .enabled(if: ZooKeeperTestServer.isAvailable, "needs ZOOKEEPER_CONNECT (scripts/test starts ZooKeeper)")
)
struct ZooKeeperLostReplyTests {
    /// A store whose connections go through a fresh `CuttingProxy`, and an observer store that
    /// talks to the server directly.
    static func storeBehindProxy() async throws -> (CuttingProxy, ZooKeeperStore, ZooKeeperStore) {
        let server = try #require(ZooKeeperTestServer.standalone?.first)
        let proxy = try await CuttingProxy.start(to: server)
        var configuration = try ZooKeeperTestServer.configuration(
            [.init(host: "127.0.0.1", port: proxy.port)], sessionTimeout: .seconds(10))
        configuration.connectTimeout = .seconds(5)
        return (proxy, try ZooKeeperStore(configuration: configuration), try ZooKeeperTestServer.makeStore())
    }

    @Test("a contender whose create reply was lost is found again, not created twice")
    func lostCreateReply() async throws {
        let (proxy, store, observer) = try await Self.storeBehindProxy()
        defer {
            Task {
                try? await proxy.close()
                await store.close()
                await observer.close()
            }
        }
        let session = try await store.makeSession(ttl: .seconds(10))
        let name = try Key("lost-reply/lock-\(UInt32.random(in: 0 ... .max))")
        // Parents first, so that the cut create is the contender's own.
        try await observer.put(try name.appending("parent-marker"), "x")
        try await observer.delete(try name.appending("parent-marker"))

        proxy.cutAfterNextCreate()
        let grant = try await withDeadline(.seconds(20), "the lock is granted after the cut") {
            try await Lock(name, session: session, store: store).acquire()
        }
        #expect(proxy.cuts == 1, "the proxy cut one connection after forwarding a create")
        #expect(session.state == .alive, "the session resumed")
        let line = try await observer.line.contenders(in: name)
        #expect(line.map(\.key) == [grant.key], "exactly one contender, the recovered one: \(line.map(\.key))")
        #expect(line.first?.session == session.id)
        try await grant.release()
        #expect(try await observer.line.contenders(in: name).isEmpty)
        try await session.close()
    }

    @Test("a read whose reply was lost is sent again on the resumed session and answers")
    func lostReadReply() async throws {
        let (proxy, store, observer) = try await Self.storeBehindProxy()
        defer {
            Task {
                try? await proxy.close()
                await store.close()
                await observer.close()
            }
        }
        let key = try Key("lost-reply/read-\(UInt32.random(in: 0 ... .max))")
        try await observer.put(key, "value")
        _ = try await store.exists(key)  // the store's session is up, through the proxy

        proxy.cutAfterNext(opCode: 4)  // getData
        let entry = try await withDeadline(.seconds(20), "the read answers after the cut") {
            try await store.get(key)
        }
        #expect(proxy.cuts == 1, "the proxy cut one connection after forwarding a getData")
        #expect(entry?.value == Array("value".utf8))
        try await observer.delete(key)
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to a ZooKeeper server and, when armed, closes the
/// client's connection right after forwarding a request whose first frame has the armed op code (a
/// create, 15, by default), so the server applies it but its reply never arrives.
final class CuttingProxy: Sendable {
    let channel: any Channel
    let port: Int
    private let armed = Atomic<Bool>(false)
    private let opCode = Atomic<Int32>(15)
    private let cutCount = Atomic<Int>(0)
    /// The client connections accepted so far (for ``cutAll()``).
    fileprivate let accepted = Mutex<[any Channel]>([])

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress!.port!
    }

    var cuts: Int { cutCount.load(ordering: .relaxed) }

    func cutAfterNextCreate() { cutAfterNext(opCode: 15) }

    /// Arms the proxy for the next request of this op code (4 getData, 12 getChildren2, 15 create).
    func cutAfterNext(opCode: Int32) {
        self.opCode.store(opCode, ordering: .relaxed)
        armed.store(true, ordering: .relaxed)
    }

    func close() async throws { try await channel.close() }

    /// Closes every client connection now, whatever it carries (it works on TLS connections too,
    /// whose requests it cannot read); new connections are still accepted.
    func cutAll() {
        let open = accepted.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        cutCount.add(open.count, ordering: .relaxed)
        for channel in open { channel.close(promise: nil) }
    }

    static func start(to server: Endpoint) async throws -> CuttingProxy {
        let box = ProxyBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { inbound in
                box.proxy?.accepted.withLock { $0.append(inbound) }
                let upstream = ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { outbound in
                        outbound.pipeline.addHandler(Relay(peer: inbound, proxy: nil))
                    }
                    .connect(host: server.host, port: server.port)
                return upstream.flatMap { outbound in
                    inbound.pipeline.addHandler(Relay(peer: outbound, proxy: box.proxy))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = CuttingProxy(channel: channel)
        box.proxy = proxy
        return proxy
    }

    /// Whether this chunk from the client starts with a create and the proxy is armed (disarms).
    fileprivate func shouldCut(_ buffer: ByteBuffer) -> Bool {
        guard armed.load(ordering: .relaxed),
            let type = buffer.getInteger(at: buffer.readerIndex + 8, endianness: .big, as: Int32.self),
            type == opCode.load(ordering: .relaxed)
        else { return false }
        guard armed.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged else { return false }
        cutCount.add(1, ordering: .relaxed)
        return true
    }
}

private final class ProxyBox: @unchecked Sendable {
    // Set once, before any connection arrives.
    var proxy: CuttingProxy?
}

private final class Relay: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let peer: any Channel
    let proxy: CuttingProxy?

    init(peer: any Channel, proxy: CuttingProxy?) {
        self.peer = peer
        self.proxy = proxy
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let cut = proxy?.shouldCut(buffer) ?? false
        let channel = context.channel
        peer.writeAndFlush(buffer).whenComplete { _ in
            if cut {
                // The request reached the server; drop the client's side before any reply.
                channel.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
    }
}
