import Foundation
import NIOCore
import NIOHPACK
import SwiftProtobuf
import Testing

@testable import CoordinationEtcd

/// The pure parts of the etcd gRPC transport: message framing, request headers, timeouts, statuses.
@Suite("gRPC wire")
struct GRPCWireTests {
    static func request(_ key: String) -> Etcdserverpb_RangeRequest {
        .with {
            $0.key = Data(key.utf8)
            $0.limit = 7
        }
    }

    @Test("a framed message is its length-prefixed bytes and reads back whatever the frame boundaries")
    func framingRoundTrip() throws {
        let first = try GRPCWire.frame(Self.request("a"), allocator: .init())
        let second = try GRPCWire.frame(Self.request(String(repeating: "k", count: 300)), allocator: .init())
        #expect(first.getInteger(at: 0, as: UInt8.self) == 0)
        #expect(Int(first.getInteger(at: 1, as: UInt32.self)!) == first.readableBytes - 5)
        var both = first
        var copy = second
        both.writeBuffer(&copy)
        // Byte by byte, then all at once: the same two messages.
        for chunkSize in [1, 2, 5, 7, both.readableBytes] {
            var reader = GRPCMessageReader(maximumMessageSize: 1 << 20)
            var messages: [Etcdserverpb_RangeRequest] = []
            var input = both
            while input.readableBytes > 0 {
                let chunk = input.readSlice(length: min(chunkSize, input.readableBytes))!
                for message in try reader.append(chunk) {
                    messages.append(try GRPCWire.decode(Etcdserverpb_RangeRequest.self, from: message))
                }
            }
            #expect(
                messages == [Self.request("a"), Self.request(String(repeating: "k", count: 300))],
                "chunks of \(chunkSize)")
            #expect(reader.pendingBytes == 0)
        }
    }

    @Test("an empty message (all fields default) is a 5-byte frame and decodes")
    func emptyMessage() throws {
        let frame = try GRPCWire.frame(Etcdserverpb_RangeRequest(), allocator: .init())
        #expect(frame.readableBytes == 5)
        var reader = GRPCMessageReader(maximumMessageSize: 16)
        let messages = try reader.append(frame)
        #expect(messages.count == 1)
        #expect(try GRPCWire.decode(Etcdserverpb_RangeRequest.self, from: messages[0]) == Etcdserverpb_RangeRequest())
    }

    @Test("a compressed or oversized message is refused with a typed error; a partial one waits")
    func refusals() throws {
        var compressed = ByteBuffer(bytes: [1, 0, 0, 0, 1, 0x08])
        var reader = GRPCMessageReader(maximumMessageSize: 1 << 20)
        #expect(throws: GRPCCallError.self) { try reader.append(compressed) }
        compressed.clear()
        var small = GRPCMessageReader(maximumMessageSize: 10)
        let error = #expect(throws: GRPCCallError.self) { try small.append(ByteBuffer(bytes: [0, 0, 0, 0, 11])) }
        #expect(error?.code == .resourceExhausted)
        var partial = GRPCMessageReader(maximumMessageSize: 10)
        #expect(try partial.append(ByteBuffer(bytes: [0, 0, 0, 0, 3, 1])).isEmpty)
        #expect(partial.pendingBytes == 6)
        #expect(try partial.append(ByteBuffer(bytes: [2, 3])).map { Array($0.readableBytesView) } == [[1, 2, 3]])
    }

    @Test("grpc-timeout uses at most 8 digits, the finest unit that fits, rounded up")
    func timeouts() {
        #expect(GRPCWire.encodeTimeout(.milliseconds(1)) == "1000000n")
        #expect(GRPCWire.encodeTimeout(.milliseconds(100)) == "100000u")
        #expect(GRPCWire.encodeTimeout(.seconds(5)) == "5000000u")
        #expect(GRPCWire.encodeTimeout(.seconds(100)) == "100000m")
        #expect(GRPCWire.encodeTimeout(.seconds(1_000_000)) == "1000000S")
        #expect(GRPCWire.encodeTimeout(.nanoseconds(1_500)) == "1500n")
        #expect(GRPCWire.encodeTimeout(.zero) == "1n")
        #expect(GRPCWire.encodeTimeout(.seconds(-3)) == "1n")
        #expect(GRPCWire.encodeTimeout(.seconds(Int64.max)).hasSuffix("H"))
    }

    static func requestHeaders(timeout: Duration?, metadata: [(String, String)]) -> HPACKHeaders {
        GRPCWire.requestHeaders(
            path: "/etcdserverpb.KV/Range", scheme: "http", authority: "127.0.0.1:2379", timeout: timeout,
            metadata: metadata)
    }

    @Test(
        "request headers: POST to the path, gRPC content type, te trailers, deadline and metadata, pseudo-headers first"
    )
    func requestHeaders() throws {
        let headers = Self.requestHeaders(timeout: .seconds(1), metadata: [("token", "abc")])
        #expect(
            Array(headers.map(\.name)) == [
                ":method", ":scheme", ":path", ":authority", "content-type", "te", "grpc-timeout", "token",
            ])
        #expect(headers.first(name: ":method") == "POST")
        #expect(headers.first(name: ":scheme") == "http")
        #expect(headers.first(name: ":path") == "/etcdserverpb.KV/Range")
        #expect(headers.first(name: ":authority") == "127.0.0.1:2379")
        #expect(headers.first(name: "content-type") == "application/grpc+proto")
        #expect(headers.first(name: "te") == "trailers")
        #expect(headers.first(name: "grpc-timeout") == "1000000u")
        #expect(headers.first(name: "token") == "abc")
        let stream = Self.requestHeaders(timeout: nil, metadata: [])
        #expect(stream.first(name: "grpc-timeout") == nil)
    }

    @Test("response heads: messages follow, trailers-only statuses, and HTTP errors mapped as gRPC does")
    func responseHeads() {
        #expect(
            GRPCWire.checkResponseHead([":status": "200", "content-type": "application/grpc"], endStream: false)
                == .messagesFollow)
        #expect(
            GRPCWire.checkResponseHead([":status": "200", "grpc-status": "0"], endStream: true) == .finished(nil))
        #expect(
            GRPCWire.checkResponseHead(
                [
                    ":status": "200", "grpc-status": "5",
                    "grpc-message": "etcdserver:%20requested%20lease%20not%20found",
                ],
                endStream: true)
                == .finished(GRPCCallError(.notFound, "etcdserver: requested lease not found")))
        #expect(
            GRPCWire.checkResponseHead([":status": "200"], endStream: true)
                == .finished(GRPCCallError(.internal, "the response ended without a grpc-status")))
        guard case .finished(let unavailable) = GRPCWire.checkResponseHead([":status": "503"], endStream: true) else {
            Issue.record("a 503 must end the call")
            return
        }
        #expect(unavailable?.code == .unavailable)
        guard case .finished(let missing) = GRPCWire.checkResponseHead([":status": "404"], endStream: false) else {
            Issue.record("a 404 must end the call")
            return
        }
        #expect(missing?.code == .unimplemented)
    }

    @Test("trailers: OK is no error, an unknown code is unknown, grpc-message is percent-decoded UTF-8")
    func trailers() {
        #expect(GRPCWire.status(fromTrailers: ["grpc-status": "0"]) == nil)
        #expect(GRPCWire.status(fromTrailers: ["grpc-status": "99"])?.code == .unknown)
        #expect(GRPCWire.status(fromTrailers: ["grpc-status": "x"])?.code == .unknown)
        #expect(GRPCWire.status(fromTrailers: [:])?.code == .internal)
        #expect(GRPCWire.percentDecoded("a%20b%C3%A9%ZZ%2") == "a bé%ZZ%2")
        #expect(GRPCWire.percentDecoded("plain") == "plain")
    }
}
