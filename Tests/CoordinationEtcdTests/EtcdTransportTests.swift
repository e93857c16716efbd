import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("etcd transport", .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS (scripts/test starts etcd)"))
struct EtcdTransportTests {
    /// etcd (grpc-go) sends a PING after nearly every request it receives; swift-nio-http2 closes a
    /// connection that receives more than 200 of them in 30 s unless the client answers them below
    /// the HTTP/2 handler. 1,000 sequential requests on one store must all succeed.
    @Test("one connection carries 1,000 quick requests (etcd's BDP pings are answered)")
    func manyRequestsOnOneConnection() async throws {
        let store = try EtcdTestServer.makeStore()
        try await store.withRunning { store in
            let key = try Key("transport/pings/\(UInt64.random(in: 0...UInt64.max))")
            try await withDeadline(.seconds(60), "1,000 requests") {
                for index in 0..<1_000 {
                    if index.isMultiple(of: 2) {
                        try await store.put(key, Array("\(index)".utf8))
                    } else {
                        _ = try await store.get(key)
                    }
                }
            }
            try await store.delete(key)
        }
    }

    /// A member that accepts the connection and then never answers (stopped, or cut off without a
    /// reset) must not hold the store forever: a call there fails at its deadline, an unanswered
    /// PING then closes the connection, and the next calls go to the next member.
    @Test("a member that accepts but never answers: calls time out, then the store moves to the next member")
    func silentMemberIsLeft() async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                // Accept, read and drop everything: no HTTP/2 preface, no answer, no close.
                channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let real = try #require(EtcdTestServer.endpoints?.first)
        var logger = Logger(label: "etcd-silent-member")
        logger.logLevel = .warning
        let store = try EtcdStore(
            configuration: .init(
                endpoints: [Endpoint(host: "127.0.0.1", port: silent.localAddress!.port!), real],
                requestTimeout: .milliseconds(500),
                logger: logger))
        try await store.withRunning { store in
            let key = try Key("transport/silent/\(UInt64.random(in: 0...UInt64.max))")
            let failures = try await withDeadline(.seconds(30), "the store reaches the real member") {
                () async throws -> [CoordinationError.Code] in
                var failures: [CoordinationError.Code] = []
                while true {
                    do {
                        try await store.put(key, Array("v".utf8))
                        return failures
                    } catch let error as CoordinationError {
                        failures.append(error.code)
                    }
                }
            }
            #expect(failures.first == .timeout, "the first call went to the silent member: \(failures)")
            #expect(failures.allSatisfy { [.timeout, .connectionFailed].contains($0) }, "\(failures)")
            #expect(try await store.get(key)?.value == Array("v".utf8))
            try await store.delete(key)
        }
        try await silent.close()
    }
}
