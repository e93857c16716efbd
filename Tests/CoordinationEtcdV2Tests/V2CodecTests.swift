import CoordinationCore
import Testing

@testable import CoordinationEtcdV2

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The pure parts: value envelope, key space, answer decoding and event translation.
struct V2CodecTests {
    @Test("plain UTF-8 values are stored as they are; binary, bound and U+0001-leading ones in an envelope")
    func valueCodec() {
        #expect(V2ValueCodec.encode(Array("hello".utf8), session: nil) == "hello")
        #expect(V2ValueCodec.encode([], session: nil) == "")
        for (value, session) in [([UInt8](0...255), nil), (Array("x".utf8), "s-1"), ([0x01, 0x41], nil)]
            as [([UInt8], String?)]
        {
            let stored = V2ValueCodec.encode(value, session: session)
            #expect(stored.hasPrefix(V2ValueCodec.marker))
            let decoded = V2ValueCodec.decode(stored)
            #expect(decoded.value == value)
            #expect(decoded.session == session)
        }
        #expect(V2ValueCodec.decode("written by etcdctl").session == nil)
    }

    @Test("keys map to paths under the namespace and back; bound-key records are one segment")
    func keySpace() throws {
        let space = V2KeySpace(namespace: "/apps/one/")
        let key = try Key("a/b")
        #expect(space.path(key) == "/apps/one/a/b")
        #expect(space.key("/apps/one/a/b") == key)
        #expect(space.key("/other/a") == nil)
        let record = space.boundKeyRecordPath(SessionID("s"), key)
        #expect(record == "/apps/one/_coordination/sessions/s/612f62")
        #expect(V2KeySpace.percentEncode("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9")
    }

    @Test("answers and errors decode, with X-Etcd-Index")
    func decoding() throws {
        let ok =
            #"{"action":"get","node":{"key":"/d","dir":true,"nodes":[{"key":"/d/x","value":"1","modifiedIndex":7,"createdIndex":5}],"modifiedIndex":4,"createdIndex":4}}"#
        guard
            case .success(let response, let index) = try V2Reply.decode(status: 200, etcdIndex: 9, body: Array(ok.utf8))
        else {
            Issue.record("not a success")
            return
        }
        #expect(index == 9)
        #expect(response.node.leaves.map(\.key) == ["/d/x"])
        let failure =
            #"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [5/1]","index":1006}"#
        guard case .failure(let body) = try V2Reply.decode(status: 400, etcdIndex: nil, body: Array(failure.utf8))
        else {
            Issue.record("not a failure")
            return
        }
        #expect(body.errorCode == V2ErrorCode.eventIndexCleared)
        let mapped = V2ErrorMapper(store: StoreDescription(backend: "etcdv2", endpoint: "e:1")).etcd(
            body, "watch", key: nil)
        #expect(mapped.code == .historyLost)
        #expect(throws: V2ProtocolError.self) {
            _ = try V2Reply.decode(status: 502, etcdIndex: nil, body: Array("bad gateway".utf8))
        }
    }

    @Test("v2 error codes map to typed errors")
    func errorCodes() {
        let mapper = V2ErrorMapper(store: StoreDescription(backend: "etcdv2", endpoint: "e:1"))
        let expected: [(Int, CoordinationError.Code)] = [
            (100, .keyNotFound), (101, .revisionMismatch), (102, .isADirectory), (104, .notADirectory),
            (105, .keyExists), (401, .historyLost), (300, .serverError),
        ]
        for (code, mapped) in expected {
            #expect(mapper.etcd(V2ErrorBody(errorCode: code, message: "m"), "op", key: nil).code == mapped, "\(code)")
        }
    }

    @Test("watch events: expire is .expired, a removed directory stands for each known key below it")
    func translation() throws {
        let watch = V2EventTranslator(keySpace: V2KeySpace(namespace: ""), key: try Key("w"), recursive: true)
        var known: [Key: Entry] = [:]
        func node(_ key: String, _ index: UInt64, dir: Bool = false, value: String? = "v") -> V2Node {
            V2Node(
                key: key, value: dir ? nil : value, dir: dir, nodes: nil, createdIndex: index, modifiedIndex: index,
                ttl: nil)
        }
        #expect(watch.translate(V2Response(action: "set", node: node("/w/a/x", 3)), known: &known).count == 1)
        #expect(watch.translate(V2Response(action: "create", node: node("/w/a/y", 4)), known: &known).count == 1)
        #expect(watch.translate(V2Response(action: "set", node: node("/wx", 5)), known: &known).isEmpty, "sibling")
        let expired = watch.translate(V2Response(action: "expire", node: node("/w/a/x", 6)), known: &known)
        #expect(expired == [.deleted(Deletion(key: try Key("w/a/x"), revision: Revision(6), reason: .expired))])
        let dir = watch.translate(V2Response(action: "delete", node: node("/w/a", 7, dir: true)), known: &known)
        #expect(dir == [.deleted(Deletion(key: try Key("w/a/y"), revision: Revision(7), reason: .deleted))])
        #expect(known.isEmpty)
    }
}
