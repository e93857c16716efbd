#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// One HTTP/1.0 GET over a plain socket: etcd serves /metrics on its client port. Blocking, and
    /// only ever called outside a measured loop.
    private func get(_ path: String) throws -> String {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw Failure(description: "'\(host)' is not an IPv4 address")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect to \(host):\(port): errno \(errno)") }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let written = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
            guard written > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += written
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard received >= 0 else { throw Failure(description: "recv: errno \(errno)") }
            if received == 0 { break }
            response.append(contentsOf: buffer[..<received])
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.") && text.contains(" 200 ") else {
            throw Failure(description: "GET \(path): \(text.prefix(80))")
        }
        return text
    }
}
