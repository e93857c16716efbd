import Foundation

/// A real peer process for interop tests (`etcdctl lock`, `consul lock`, a kazoo script…): it
/// runs the other implementation against the same server, so a check compares against the
/// reference rather than a model of it. Its output goes to a temporary file that is read as it
/// grows; lines can be written to its standard input. Only the process it started is ever
/// signalled, by PID (through `Process`).
public final class PeerProcess: @unchecked Sendable {
    // @unchecked: Process and FileHandle are not Sendable; every access goes through this type's
    // methods, which read the output file, write to the input pipe or signal the process.
    private let process = Process()
    private let output: URL
    private let input = Pipe()
    /// A short name for messages (`etcdctl`, `consul lock`…).
    public let name: String

    public init(name: String, executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        output = FileManager.default.temporaryDirectory.appendingPathComponent("peer-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = input
        try process.run()
    }

    deinit {
        if process.isRunning {
            signalProcess(process.processIdentifier, SIGCONT)  // a frozen process cannot act on SIGTERM
            process.terminate()
        }
        try? FileManager.default.removeItem(at: output)
    }

    /// Everything the process printed so far (standard output and error).
    public var printed: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

    public var isRunning: Bool { process.isRunning }

    /// The process id.
    public var pid: Int32 { process.processIdentifier }

    /// Waits until the output contains `text`.
    public func waitForOutput(_ text: String, within deadline: Duration = .seconds(30)) async throws {
        let start = ContinuousClock.now
        while !printed.contains(text) {
            if ContinuousClock.now - start > deadline {
                throw ConformanceFailure("\(name) did not print '\(text)' within \(deadline); printed: \(printed)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for the process to exit; returns its status.
    public func waitForExit(within deadline: Duration = .seconds(30)) async throws -> Int32 {
        let start = ContinuousClock.now
        while process.isRunning {
            if ContinuousClock.now - start > deadline {
                throw ConformanceFailure("\(name) did not exit within \(deadline); printed: \(printed)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Writes one line to the process's standard input.
    public func send(line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// SIGTERM, as a service manager stopping the process.
    public func terminate() { if process.isRunning { process.terminate() } }

    /// SIGINT, as a user's Ctrl-C.
    public func interrupt() { if process.isRunning { process.interrupt() } }

    /// Freezes the process (SIGSTOP), as a GC pause, a debugger or a VM freeze would.
    public func pause() { if process.isRunning { signalProcess(process.processIdentifier, SIGSTOP) } }

    /// Lets a frozen process go on (SIGCONT).
    public func resume() { if process.isRunning { signalProcess(process.processIdentifier, SIGCONT) } }

    /// Ends the process (SIGKILL), as a crash would; it is resumed first if frozen.
    public func kill() {
        guard process.isRunning else { return }
        signalProcess(process.processIdentifier, SIGKILL)
        signalProcess(process.processIdentifier, SIGCONT)
    }
}

/// Sends `signal` to `pid` (a process this type started).
private func signalProcess(_ pid: Int32, _ signal: Int32) {
    _ = kill(pid, signal)
}

/// An executable of this package, built by SwiftPM beside the running test binary for the test
/// targets that depend on it (or wherever the environment variable `override` says).
public enum BuiltExecutable {
    public static func path(_ name: String, override: String) throws -> String {
        if let explicit = ProcessInfo.processInfo.environment[override] { return explicit }
        let running =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let candidate = URL(fileURLWithPath: running).deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw ConformanceFailure("\(name) is not at \(candidate); set \(override)")
        }
        return candidate
    }
}
