import CoordinationCore
import Foundation
import Testing

@testable import CoordinationZooKeeper

/// Against the real standalone server of `scripts/with-servers` (ZOOKEEPER_CONNECT).
@Suite(
    "ZooKeeper connection against a real server",
    .enabled(
        if: ProcessInfo.processInfo.environment["ZOOKEEPER_CONNECT"] != nil,
        "needs ZOOKEEPER_CONNECT (scripts/with-servers)")
)
struct ZooKeeperConnectionTests {
    static func connect() async throws -> ZooKeeperClient {
        let endpoint = ProcessInfo.processInfo.environment["ZOOKEEPER_CONNECT"] ?? ""
        let parts = endpoint.split(separator: ":")
        let host = String(parts.first ?? "127.0.0.1")
        let port = Int(parts.last ?? "") ?? 2181
        return try await ZooKeeperClient.connect(
            endpoints: [Endpoint(host: host, port: port)], sessionTimeout: .seconds(4))
    }

    static func uniquePath() -> String { "/swift-coordination-test-\(UUID().uuidString.lowercased())" }

    @Test("handshake, create, getData, setData with version, exists, delete; errors map to codes")
    func basicOperations() async throws {
        let connection = try await Self.connect()
        let session = await connection.session()
        #expect((session?.id ?? 0) != 0)
        #expect((session?.timeout ?? .zero) > .zero)
        let path = Self.uniquePath()

        guard
            case .created(let createdPath, let stat) = try await connection.request(
                .create(path: path, data: Array("one".utf8), acl: ACL.openUnsafe, mode: .persistent))
        else {
            Issue.record("create did not answer with a path and Stat")
            return
        }
        #expect(createdPath == path)
        #expect(stat.version == 0)
        #expect(stat.czxid > 0)

        #expect(try await connection.request(.getData(path: path, watch: false)) == .data(Array("one".utf8), stat))

        await #expect(throws: CoordinationError.self) {
            try await connection.request(.create(path: path, data: [], acl: ACL.openUnsafe, mode: .persistent))
        }
        do {
            _ = try await connection.request(.setData(path: path, data: [2], version: 7))
            Issue.record("setData with a wrong version succeeded")
        } catch let error as CoordinationError {
            #expect(error.code == .revisionMismatch)
        }
        guard case .stat(let updated) = try await connection.request(.setData(path: path, data: [2], version: 0)) else {
            Issue.record("setData did not answer with a Stat")
            return
        }
        #expect(updated.version == 1)
        #expect(updated.mzxid > stat.mzxid)

        // Pipelined: both go out before either reply is read.
        async let first = connection.request(.exists(path: path, watch: false))
        async let second = connection.request(.getChildren2(path: path, watch: false))
        #expect(try await first == .stat(updated))
        guard case .children(let children, _) = try await second else {
            Issue.record("no children")
            return
        }
        #expect(children.isEmpty)

        #expect(try await connection.request(.delete(path: path, version: ZooKeeperRequest.anyVersion)) == .empty)
        do {
            _ = try await connection.request(.exists(path: path, watch: false))
            Issue.record("exists found a deleted node")
        } catch let error as CoordinationError {
            #expect(error.code == .keyNotFound)
        }
        await connection.close()
    }

    @Test("a data watch fires once on change; a persistent recursive watch reports a child's creation")
    func watches() async throws {
        let connection = try await Self.connect()
        let path = Self.uniquePath()
        _ = try await connection.request(.create(path: path, data: [], acl: ACL.openUnsafe, mode: .persistent))
        _ = try await connection.request(.getData(path: path, watch: true))
        _ = try await connection.request(.addWatch(path: path, mode: .persistentRecursive))
        _ = try await connection.request(.setData(path: path, data: [1], version: ZooKeeperRequest.anyVersion))
        _ = try await connection.request(
            .create(path: path + "/child", data: [], acl: ACL.openUnsafe, mode: .ephemeral))

        let child = path + "/child"
        let received = try await withThrowingTaskGroup(of: [WatcherEvent]?.self) { group in
            group.addTask {
                var events: [WatcherEvent] = []
                for await case .notification(let event) in connection.events {
                    events.append(event)
                    if event.path == child { return events }
                }
                return events
            }
            group.addTask {
                try await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        // One notification per change for this connection, even with two watches on `path`.
        #expect(
            received == [
                WatcherEvent(type: .nodeDataChanged, state: .syncConnected, path: path),
                WatcherEvent(type: .nodeCreated, state: .syncConnected, path: child),
            ])

        let multi = try await connection.request(
            .multi([.check(path: path, version: 0), .delete(path: path + "/child", version: -1)])
        )
        #expect(multi == .multi([.error(.badVersion), .error(.runtimeInconsistency)]))
        _ = try await connection.request(.delete(path: path + "/child", version: -1))
        _ = try await connection.request(.delete(path: path, version: -1))
        await connection.close()
    }
}

extension ZooKeeperClient {
    /// A request's response alone.
    func request(_ request: ZooKeeperRequest) async throws -> ZooKeeperResponse {
        try await send(request).response
    }
}
