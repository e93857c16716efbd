import AsyncHTTPClient
@_spi(Backend) import CoordinationCore
@_spi(Backend) import CoordinationNIO
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// An answer from the agent: status, the `X-Consul-Index` header (blocking-query index) and the body.
struct ConsulResponse: Sendable {
    var status: Int
    var index: UInt64?
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var isSuccess: Bool { (200..<300).contains(status) }
}

/// The thin I/O layer: pooled keep-alive HTTP/1.1 connections to the agent (plain, or HTTPS with
/// the store's TLS configuration on each request), every request with a deadline, the ACL token in
/// the `X-Consul-Token` header, failures mapped to ``CoordinationError`` (never with the token in
/// them).
struct ConsulHTTP: Sendable {
    let client: HTTPClient
    let baseURL: String
    /// HTTPS: the configuration of every request (certificates read when the store was made).
    let tlsConfiguration: TLSConfiguration?
    let token: String?
    let datacenter: String?
    let errors: ConsulErrorMapper

    init(
        endpoint: Endpoint, tls: TLSSettings?, token: String?, datacenter: String?, errors: ConsulErrorMapper,
        logger: Logger
    ) throws(CoordinationError) {
        self.token = token
        self.datacenter = datacenter
        self.errors = errors
        guard let tls else {
            client = Self.pools.client(named: nil)
            baseURL = "http://\(endpoint)"
            tlsConfiguration = nil
            return
        }
        tlsConfiguration = try tls.clientConfiguration(store: errors.store, logger: logger)
        if let serverName = tls.serverName {
            // The URL names the host the certificate must name (it is verified against it and sent
            // as SNI); the pool connects to the endpoint's address instead.
            client = Self.pools.client(named: ServerName(name: serverName, address: endpoint.host))
            baseURL = "https://\(Endpoint(host: serverName, port: endpoint.port))"
        } else {
            client = Self.pools.client(named: nil)
            baseURL = "https://\(endpoint)"
        }
    }

    /// A host name that stands for an address (`servername=`).
    struct ServerName: Hashable {
        var name: String
        var address: String
    }

    /// The process's pools, never shut down (like `HTTPClient.shared`): one for every Consul store
    /// (plain and HTTPS; a pool per agent and TLS configuration inside it), and one per server
    /// name that stands for another address.
    static let pools = Pools()

    final class Pools: Sendable {
        private let shared = ConsulHTTP.makeClient(maxConnections: 1024, dnsOverride: [:])
        private let overridden = Mutex<[ServerName: HTTPClient]>([:])

        func client(named serverName: ServerName?) -> HTTPClient {
            guard let serverName else { return shared }
            return overridden.withLock { clients in
                if let client = clients[serverName] { return client }
                let client = ConsulHTTP.makeClient(
                    maxConnections: 1024, dnsOverride: [serverName.name: serverName.address])
                clients[serverName] = client
                return client
            }
        }
    }

    static func makeClient(maxConnections: Int, dnsOverride: [String: String]) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = .http1Only
        configuration.timeout = .init(connect: .seconds(3), read: nil)
        // Every blocking query holds a connection while it waits, so the pool must have room for
        // the watches of a busy client on top of its ordinary calls.
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        // A connection that cannot be made (refused, TLS refused) fails the calls waiting for it at
        // once, as `connectionFailed`; the pool would otherwise try again until each call's deadline
        // and report only a timeout. Callers that must outlast an outage (renewals, watches) retry
        // on their own schedule.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.dnsOverride = dnsOverride
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends one request and waits at most `timeout` for the whole answer.
    func send(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String?)] = [],
        body: [UInt8]? = nil,
        timeout: Duration,
        operation: String,
        key: Key? = nil
    ) async throws(CoordinationError) -> ConsulResponse {
        var request = HTTPClientRequest(url: url(path, query: query))
        request.method = method
        request.tlsConfiguration = tlsConfiguration
        if let token, !token.isEmpty { request.headers.add(name: "X-Consul-Token", value: token) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            let buffer = try await response.body.collect(upTo: 64 * 1024 * 1024)
            let index = response.headers.first(name: "X-Consul-Index").flatMap(UInt64.init)
            return ConsulResponse(
                status: Int(response.status.code), index: index, body: Array(buffer.readableBytesView))
        } catch {
            throw errors.transport(error, operation, key: key, cancelled: Task.isCancelled)
        }
    }

    func url(_ path: String, query: [(String, String?)]) -> String {
        var items = query
        if let datacenter, !datacenter.isEmpty { items.append(("dc", datacenter)) }
        var url = baseURL + path
        if !items.isEmpty {
            url +=
                "?"
                + items.map { name, value in value.map { "\(name)=\(Self.escape($0))" } ?? name }
                .joined(separator: "&")
        }
        return url
    }

    /// Query values are percent-encoded except for unreserved characters.
    static func escape(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Consul's duration syntax, in whole milliseconds (`"1500ms"`), or whole seconds when exact.
    var consulText: String {
        let milliseconds = nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
