import CoordinationCore
import CoordinationTestKit
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A 3-member etcd cluster a test starts, restarts and stops itself — only processes it started,
/// by PID — with its data in a temporary directory removed at the end. For faults that would
/// spoil the shared cluster `scripts/with-servers` starts (restarting every member).
final class OwnEtcdCluster: @unchecked Sendable {
    static let binary = "/usr/bin/etcd"
    static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    struct Member {
        let name: String
        let client: Int
        let peer: Int
        var process: Process?
    }

    private let directory: URL
    private let token = "swift-coordination-own-\(UInt32.random(in: 0 ... .max))"
    private var members: [Member] = []
    private let lock = NSLock()

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "etcd-own-\(UInt64.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ports = try Self.freePorts(6)
        members = (0..<3).map { Member(name: "own-m\($0 + 1)", client: ports[2 * $0], peer: ports[2 * $0 + 1]) }
    }

    var endpoints: [Endpoint] { members.map { Endpoint(host: "127.0.0.1", port: $0.client) } }

    /// Starts every member and waits until the cluster serves a write.
    func start() async throws {
        for index in members.indices { try launch(index) }
        for index in members.indices { try await waitHealthy(index, within: .seconds(30)) }
    }

    /// Ends member `index` with SIGTERM (etcd's graceful stop: it drains its gRPC connections,
    /// hands leadership on if it leads) and returns how long it took to exit; SIGKILL after 15 s.
    @discardableResult
    func stop(_ index: Int) async -> Duration {
        guard let process = lock.withLock({ members[index].process }) else { return .zero }
        let started = ContinuousClock.now
        kill(process.processIdentifier, SIGTERM)
        let deadline = started + .seconds(15)
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        lock.withLock { members[index].process = nil }
        return ContinuousClock.now - started
    }

    /// Starts member `index` again on its data and waits until it is healthy.
    func restart(_ index: Int) async throws {
        try launch(index)
        try await waitHealthy(index, within: .seconds(30))
    }

    /// Stops every member still running and removes the data.
    func shutdown() async {
        for index in members.indices { await stop(index) }
        try? FileManager.default.removeItem(at: directory)
    }

    private func launch(_ index: Int) throws {
        let member = members[index]
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peer)" }.joined(separator: ",")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "--name", member.name,
            "--data-dir", directory.appendingPathComponent(member.name).path,
            "--listen-client-urls", "http://127.0.0.1:\(member.client)",
            "--advertise-client-urls", "http://127.0.0.1:\(member.client)",
            "--listen-peer-urls", "http://127.0.0.1:\(member.peer)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peer)",
            "--initial-cluster", cluster,
            "--initial-cluster-token", token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            "--log-level", "error",
        ]
        let log = directory.appendingPathComponent("\(member.name).log")
        if !FileManager.default.fileExists(atPath: log.path) {
            FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let output = try FileHandle(forWritingTo: log)
        output.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lock.withLock { members[index].process = process }
    }

    /// Waits until member `index` reports itself healthy (`etcdctl endpoint health`: it has a
    /// leader and serves a quorum read).
    private func waitHealthy(_ index: Int, within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        let endpoint = "127.0.0.1:\(members[index].client)"
        while ContinuousClock.now < deadline {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: "/usr/bin/etcdctl")
            check.arguments = ["--endpoints", endpoint, "--command-timeout=1s", "endpoint", "health"]
            check.environment = ["ETCDCTL_API": "3"]
            check.standardOutput = FileHandle.nullDevice
            check.standardError = FileHandle.nullDevice
            try check.run()
            check.waitUntilExit()
            if check.terminationStatus == 0 { return }
            guard lock.withLock({ members[index].process?.isRunning ?? false }) else {
                throw ConformanceFailure("etcd member \(members[index].name) exited; see its log in \(directory.path)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ConformanceFailure("etcd member \(members[index].name) was not healthy within \(limit)")
    }

    /// Loopback ports nothing listens on now (bound to port 0 and released).
    private static func freePorts(_ count: Int) throws -> [Int] {
        var channels: [any Channel] = []
        defer { for channel in channels { try? channel.close().wait() } }
        for _ in 0..<count {
            channels.append(
                try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0)
                    .wait())
        }
        return channels.map { $0.localAddress!.port! }
    }
}
