import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plain HTTP/1.0 GET against 127.0.0.1, for checks that read what a test process serves (the
/// example service's Prometheus endpoint). Blocking and bounded by a socket timeout; no keep-alive.
public enum LoopbackHTTP {
    /// The response body of `GET path` on 127.0.0.1:`port`; throws unless the status is 200.
    public static func get(port: Int, path: String, timeoutSeconds: Int = 10) throws -> String {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw ConformanceFailure("socket(): errno \(errno)") }
        defer { close(socket) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw ConformanceFailure("connect to 127.0.0.1:\(port): errno \(errno)") }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard send(socket, request, request.count, 0) == request.count else {
            throw ConformanceFailure("send to 127.0.0.1:\(port): errno \(errno)")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = recv(socket, &chunk, chunk.count, 0)
            if count < 0 { throw ConformanceFailure("recv from 127.0.0.1:\(port): errno \(errno)") }
            if count == 0 { break }
            response += chunk[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let headerEnd = text.range(of: "\r\n\r\n") else {
            throw ConformanceFailure("no HTTP response from 127.0.0.1:\(port): \(text)")
        }
        let statusLine = text[..<headerEnd.lowerBound].split(separator: "\r\n").first ?? ""
        guard statusLine.split(separator: " ").dropFirst().first == "200" else {
            throw ConformanceFailure("GET \(path) on 127.0.0.1:\(port): \(statusLine)")
        }
        return String(text[headerEnd.upperBound...])
    }
}
