import CoordinationTestKit
import Foundation

/// A real `etcdctl` process (Debian's etcd-client) as a peer: it takes part in locks and elections
/// through etcd's own concurrency package, so the interop tests compare against the reference.
/// Only the process it started is ever signalled, by PID.
final class EtcdctlPeer: @unchecked Sendable {
    // @unchecked: Process is not Sendable; every access goes through this type's methods, which
    // only read the output file or signal the process.
    private let process = Process()
    private let output: URL

    init(endpoints: String, arguments: [String]) throws {
        output = FileManager.default.temporaryDirectory.appendingPathComponent("etcdctl-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcdctl")
        process.arguments = ["--endpoints", endpoints] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ETCDCTL_API"] = "3"
        process.environment = environment
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: output)
    }

    /// Everything the process printed so far.
    var printed: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

    var isRunning: Bool { process.isRunning }

    /// Waits until the output contains `text` (the process is external; its output is read as it grows).
    func waitForOutput(_ text: String, within deadline: Duration = .seconds(20)) async throws {
        let start = ContinuousClock.now
        while !printed.contains(text) {
            if ContinuousClock.now - start > deadline {
                throw ConformanceFailure("etcdctl did not print '\(text)' within \(deadline); printed: \(printed)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for the process to exit; returns its status.
    func waitForExit(within deadline: Duration = .seconds(20)) async throws -> Int32 {
        let start = ContinuousClock.now
        while process.isRunning {
            if ContinuousClock.now - start > deadline {
                throw ConformanceFailure("etcdctl did not exit within \(deadline); printed: \(printed)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// SIGINT, as a user's Ctrl-C: etcdctl then closes its session (revoking its lease) and exits.
    func interrupt() { if process.isRunning { process.interrupt() } }
}
