import BenchSupport

/// etcd's own counts of RPCs by method, read from its Prometheus endpoint, so RPCs per lock cycle
/// (and stream messages for the scale run) are counted by the server for both clients alike.
struct ServerMetrics: Sendable {
    let host: String
    let port: Int

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Unary RPCs handled so far, by method name (`Txn`, `Range`, …), summed over result codes.
    func unaryCounts() throws -> [String: Double] {
        Self.sum("grpc_server_handled_total", type: "unary", in: try get("/metrics"))
    }

    /// Streams opened so far (`grpc_server_started_total` of bidirectional calls) and messages
    /// received on streams (`grpc_server_msg_received_total`), by method name.
    func streamCounts() throws -> (started: [String: Double], received: [String: Double]) {
        let text = try get("/metrics")
        return (
            Self.sum("grpc_server_started_total", type: "bidi_stream", in: text),
            Self.sum("grpc_server_msg_received_total", type: "bidi_stream", in: text)
        )
    }

    /// The samples of the counter `metric` for calls of `type`, summed by `grpc_method`.
    private static func sum(_ metric: String, type: String, in text: String) -> [String: Double] {
        var counts: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            guard line.hasPrefix(metric + "{"), line.contains("grpc_type=\"\(type)\""),
                let method = line.firstRange(of: "grpc_method=\"").map({ line[$0.upperBound...].prefix { $0 != "\"" } }
                ),
                let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { continue }
            counts[String(method), default: 0] += value
        }
        return counts
    }

    /// One HTTP/1.0 GET over a plain socket: etcd serves /metrics on its client port. Blocking, and
    /// only ever called outside a measured loop.
    private func get(_ path: String) throws -> String {
        let text = try tcpExchange(
            host: host, port: port, request: "GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\n\r\n")
        guard text.hasPrefix("HTTP/1.") && text.contains(" 200 ") else {
            throw Failure(description: "GET \(path): \(text.prefix(80))")
        }
        return text
    }
}
