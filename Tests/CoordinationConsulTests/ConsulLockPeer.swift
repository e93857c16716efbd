import CoordinationTestKit
import Foundation

/// A real `consul lock PREFIX CMD` process (Debian 11's consul 1.8.7, the binary
/// `scripts/with-servers` exports as `CONSUL_BINARY`): it holds `PREFIX/.lock` through Go's
/// `api.Lock` while CMD runs. Only the process it started is ever signalled, by PID.
final class ConsulLockPeer: @unchecked Sendable {
    // @unchecked: Process is not Sendable; every access goes through this type's methods, which
    // only read the output file or signal the process.
    private let process = Process()
    private let output: URL

    static var binary: String? { ConsulTestServer.environment("CONSUL_BINARY") }

    init(prefix: String, shellCommand: String) throws {
        guard let binary = Self.binary, let address = ConsulTestServer.environment(ConsulTestServer.addressVariable)
        else {
            throw ConformanceFailure("CONSUL_BINARY / CONSUL_HTTP_ADDR not set; run the tests with scripts/test")
        }
        output = FileManager.default.temporaryDirectory.appendingPathComponent("consul-lock-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["lock", "-http-addr=\(address)", prefix, shellCommand]
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: output)
    }

    var printed: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// Waits until the output contains `text` (an external process: its output is read as it grows).
    func waitForOutput(_ text: String, within deadline: Duration = .seconds(30)) async throws {
        let start = ContinuousClock.now
        while !printed.contains(text) {
            if ContinuousClock.now - start > deadline {
                throw ConformanceFailure("consul lock did not print '\(text)' within \(deadline); printed: \(printed)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func waitForExit(within deadline: Duration = .seconds(30)) async throws -> Int32 {
        let start = ContinuousClock.now
        while process.isRunning {
            if ContinuousClock.now - start > deadline {
                throw ConformanceFailure("consul lock did not exit within \(deadline); printed: \(printed)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }
}
