#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public struct TCPExchangeFailure: Error, CustomStringConvertible {
    public let description: String
}

/// Sends `request` to `host:port` (an IPv4 address) over a new TCP connection and returns all the
/// server answered until it closed the connection: how the benchmarks read a server's own counters
/// (an HTTP/1.0 GET of etcd's /metrics, ZooKeeper's four-letter word `srvr`). Blocking, with
/// `timeout` on each send and receive; call it only outside a measured loop.
public func tcpExchange(host: String, port: Int, request: String, timeout: Duration = .seconds(5))
    throws(TCPExchangeFailure) -> String
{
    func failure(_ what: String) -> TCPExchangeFailure {
        TCPExchangeFailure(description: "\(host):\(port): \(what)")
    }
    #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard descriptor >= 0 else { throw failure("socket: errno \(errno)") }
    defer { close(descriptor) }

    let (seconds, attoseconds) = timeout.components
    var limit = timeval(tv_sec: .init(seconds), tv_usec: .init(attoseconds / 1_000_000_000_000))
    for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
        guard setsockopt(descriptor, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw failure("setsockopt: errno \(errno)")
        }
    }

    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw failure("not an IPv4 address") }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw failure("connect: errno \(errno)") }

    let bytes = Array(request.utf8)
    var sent = 0
    while sent < bytes.count {
        let written = bytes[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        guard written > 0 else { throw failure("send: errno \(errno)") }
        sent += written
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard received >= 0 else { throw failure("recv: errno \(errno)") }
        if received == 0 { break }
        response.append(contentsOf: buffer[..<received])
    }
    return String(decoding: response, as: UTF8.self)
}
