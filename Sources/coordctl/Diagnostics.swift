import ArgumentParser
import Coordination
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Messages and exit statuses: results go to standard output, everything else to standard error.
enum Diagnostics {
    /// A store error (unreachable, refused, timed out, closed).
    static let storeFailure = ExitCode(1)
    /// The key or lock is not there.
    static let notFound = ExitCode(2)
    /// The lock was lost while its command ran.
    static let lockLost = ExitCode(3)

    static let logger = Logger(label: "coordctl")

    static func bootstrapLogging(verbose: Bool) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .info : .error
            return handler
        }
    }

    /// Writes `message` to standard error as `coordctl: message`.
    static func say(_ message: String) {
        writeError("coordctl: \(message)\n")
    }

    /// Says what went wrong and gives the exit status for it.
    static func fail(_ error: CoordinationError) -> ExitCode {
        say(error.message + location(error))
        return storeFailure
    }

    private static func location(_ error: CoordinationError) -> String {
        var parts: [String] = []
        if let key = error.key { parts.append("key '\(key)'") }
        if let backend = error.backend { parts.append(backend + (error.endpoint.map { " at \($0)" } ?? "")) }
        return parts.isEmpty ? " [\(error.code)]" : " (\(parts.joined(separator: ", "))) [\(error.code)]"
    }

    static func writeError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }

    /// Writes `text` to standard output at once (a line a script may be waiting for).
    static func printLine(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
    }

    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }
}

/// A spinner on standard error while something waits (a lock, an election), only on a terminal.
final class Progress: Sendable {
    private let message: String
    private let running = Atomic<Bool>(false)

    init(_ message: String) { self.message = message }

    /// Shows the spinner while `body` runs.
    func whileRunning<Result>(_ body: () async throws -> Result) async throws -> Result {
        guard Diagnostics.standardErrorIsTerminal else { return try await body() }
        running.store(true, ordering: .releasing)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                let frames = ["|", "/", "-", "\\"]
                var index = 0
                let started = ContinuousClock.now
                while running.load(ordering: .acquiring), !Task.isCancelled {
                    let waited = (ContinuousClock.now - started).components.seconds
                    Diagnostics.writeError("\r\(frames[index % frames.count]) \(message) (\(waited) s)")
                    index += 1
                    try? await Task.sleep(for: .milliseconds(125))
                }
                Diagnostics.writeError("\r\u{1B}[2K")
            }
            defer {
                running.store(false, ordering: .releasing)
                group.cancelAll()
            }
            return try await body()
        }
    }
}
