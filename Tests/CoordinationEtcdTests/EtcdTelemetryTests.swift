@_spi(Backend) import CoordinationCore
import CoordinationTestKit
import InMemoryTracing
import Testing
import Tracing

@testable import CoordinationEtcd

/// What a network backend adds to the recipes' metrics and spans: a client span per request,
/// session renewals, and history lost by a watch (``RecordedMetrics`` and an `InMemoryTracer`).
@Suite(
    "etcd metrics and tracing", .serialized,
    .enabled(if: EtcdTestServer.isAvailable, "needs ETCD_ENDPOINTS (scripts/test starts etcd)"))
struct EtcdTelemetryTests {
    let etcd = [("backend", "etcd")]

    @Test("each request is a client span named etcd.<operation>, with no key in it")
    func requestSpans() async throws {
        let tracer = InMemoryTracer()
        let key = try Key("telemetry/\(UInt64.random(in: 0...UInt64.max))")
        try await withTracer(tracer) {
            try await EtcdTestServer.makeStore().withRunning { store in
                try await store.put(key, Array("v".utf8))
                _ = try await store.get(key)
                try await store.delete(key)
            }
        }
        let spans = tracer.finishedSpans
        let get = try #require(spans.first { $0.operationName == "etcd.get" }, "spans: \(spans.map(\.operationName))")
        #expect(get.kind == .client)
        #expect(get.attributes["coordination.backend"]?.toSpanAttribute() == .string("etcd"))
        #expect(get.attributes["coordination.operation"]?.toSpanAttribute() == .string("get"))
        #expect(
            spans.contains { $0.operationName == "etcd.put" } && spans.contains { $0.operationName == "etcd.delete" })
        for span in spans {
            // swift-format-ignore: ReplaceForEachWithForLoop
            // (SpanAttributes offers forEach, and is no Sequence.)
            span.attributes.forEach { name, value in
                #expect(!"\(value)".contains(key.path), "span \(span.operationName) names the key in \(name)")
            }
        }
    }

    @Test("session renewals and a watch's lost history are counted")
    func renewalsAndHistoryLost() async throws {
        RecordedMetrics.reset()
        try await EtcdTestServer.makeStore().withRunning { store in
            let session = try await store.makeSession(ttl: .seconds(2))
            let start = ContinuousClock.now
            while RecordedMetrics.total(Telemetry.Metric.sessionRenewals, etcd) < 2 {
                if ContinuousClock.now - start > .seconds(10) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(RecordedMetrics.total(Telemetry.Metric.sessionRenewals, etcd) >= 2)
            try await session.close()
            #expect(RecordedMetrics.total(Telemetry.Metric.sessionExpiries, etcd) == 0, "a closed session is no expiry")

            let key = try Key("telemetry/compacted-\(UInt64.random(in: 0...UInt64.max))")
            _ = try await collect(try await store.watchResumingPastCompaction(key).events, 1)
            #expect(RecordedMetrics.total(Telemetry.Metric.historyLost, etcd) == 1)
            try await store.delete(key)
        }
    }
}
