import CoordinationCore
import CoordinationEtcd
import CoordinationTestKit
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
}
