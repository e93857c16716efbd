import BenchSupport

/// etcd's own count of finished unary RPCs by method (`grpc_server_handled_total`), read from its
/// Prometheus endpoint, so RPCs per lock cycle are counted by the server for both clients alike.
struct ServerMetrics: Sendable {
    let host: String
    let port: Int

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Unary RPCs handled so far, by method name (`Txn`, `Range`, …), summed over result codes.
    func unaryCounts() throws -> [String: Double] {
        var counts: [String: Double] = [:]
        for line in try get("/metrics").split(separator: "\n") {
            guard line.hasPrefix("grpc_server_handled_total{"), line.contains("grpc_type=\"unary\""),
                  let method = line.firstRange(of: "grpc_method=\"").map({ line[$0.upperBound...].prefix { $0 != "\"" } }),
                  let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { continue }
            counts[String(method), default: 0] += value
        }
        return counts
    }

    /// Streams opened so far (`grpc_server_started_total` of bidirectional calls) and messages
    /// received on streams (`grpc_server_msg_received_total`), by method name.
    func streamCounts() throws -> (started: [String: Double], received: [String: Double]) {
        var started: [String: Double] = [:]
        var received: [String: Double] = [:]
        for line in try get("/metrics").split(separator: "\n") {
            let isStarted = line.hasPrefix("grpc_server_started_total{")
            let isReceived = line.hasPrefix("grpc_server_msg_received_total{")
            guard isStarted || isReceived, line.contains("grpc_type=\"bidi_stream\""),
                  let method = line.firstRange(of: "grpc_method=\"").map({ line[$0.upperBound...].prefix { $0 != "\"" } }),
                  let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { continue }
            if isStarted { started[String(method), default: 0] += value } else { received[String(method), default: 0] += value }
        }
        return (started, received)
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
