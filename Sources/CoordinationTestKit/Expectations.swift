import Coordination
import CoordinationCore
import Synchronization

/// A conformance expectation that did not hold.
public struct ConformanceFailure: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let file: String
    public let line: Int

    public init(_ message: String, file: String = #fileID, line: Int = #line) {
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(message) (\(file):\(line))" }
}

/// Fails with `message` unless `condition` holds.
public func expect(
    _ condition: Bool,
    _ message: @autoclosure () -> String,
    file: String = #fileID,
    line: Int = #line
) throws {
    if !condition { throw ConformanceFailure(message(), file: file, line: line) }
}

/// Fails unless `actual == expected`.
public func expectEqual<T: Equatable>(
    _ actual: T,
    _ expected: T,
    _ what: @autoclosure () -> String = "value",
    file: String = #fileID,
    line: Int = #line
) throws {
    if actual != expected {
        throw ConformanceFailure("\(what()): expected \(expected), got \(actual)", file: file, line: line)
    }
}

/// Fails unless `operation` throws a `CoordinationError` with `code`; returns that error.
@discardableResult
public func expectError<T>(
    _ code: CoordinationError.Code,
    file: String = #fileID,
    line: Int = #line,
    _ operation: () async throws -> T
) async throws -> CoordinationError {
    do {
        let value = try await operation()
        throw ConformanceFailure("expected error \(code), got success: \(value)", file: file, line: line)
    } catch let error as CoordinationError {
        if error.code != code {
            throw ConformanceFailure("expected error \(code), got \(error)", file: file, line: line)
        }
        return error
    }
}

/// Runs `operation` with a deadline: a hang becomes a failure instead of a stuck suite. The deadline
/// is generous; it guards against hangs and is not a timing assertion.
///
/// The operation runs in a task of its own that is cancelled, but not waited for, when the deadline
/// passes: an operation that ignores cancellation (awaiting another task's value, say) still fails
/// the check on time rather than holding the suite.
public func withDeadline<T: Sendable>(
    _ deadline: Duration,
    _ what: String,
    file: String = #fileID,
    line: Int = #line,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    let work = Task { race.finish(with: await Result(catching: operation)) }
    let timer = Task {
        try? await Task.sleep(for: deadline)
        race.finish(
            with: .failure(ConformanceFailure("\(what) did not happen within \(deadline)", file: file, line: line)))
    }
    return try await withTaskCancellationHandler {
        let result = await race.outcome()
        work.cancel()
        timer.cancel()
        return try result.get()
    } onCancel: {
        work.cancel()
        timer.cancel()
    }
}

/// The first of the operation and the timer to finish decides; later results are dropped.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<Result<T, any Error>, Never>?
    }
    private let state = Mutex(State())

    func finish(with result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<T, any Error>, Never>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    func outcome() async -> Result<T, any Error> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// Reads the next `count` events of a watch, failing if they do not arrive within `deadline`.
/// Events are buffered by the store, so a check can make its changes first and read them after.
public func collect(
    _ stream: WatchStream,
    _ count: Int,
    within deadline: Duration = .seconds(15),
    file: String = #fileID,
    line: Int = #line
) async throws -> [WatchEvent] {
    try await withDeadline(deadline, "\(count) watch event(s)", file: file, line: line) {
        var events: [WatchEvent] = []
        var iterator = stream.makeAsyncIterator()
        while events.count < count {
            guard let event = try await iterator.next() else {
                throw ConformanceFailure("watch ended after \(events.count) of \(count) events", file: file, line: line)
            }
            events.append(event)
        }
        return events
    }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// A shared, lock-protected value for tallies kept by concurrent tasks in a check.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) { self.mutex = Mutex(value) }

    public func withLock<Result: Sendable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { try body(&$0) }
    }
}

/// Waits until `registration` reports `.registered`, failing with `what` after `deadline`.
public func waitUntilRegistered(
    _ registration: ServiceRegistration, _ what: String = "first registration", within deadline: Duration = .seconds(15)
) async throws {
    try await withDeadline(deadline, what) {
        for await status in registration.statuses() { if case .registered = status { return } }
    }
}

/// Expects `operation` to fail with `connectionFailed` naming TLS, within `bound`: refused by the
/// handshake (an untrusted or misnamed server), not by a deadline the caller set longer.
public func expectTLSRefusal<T>(
    within bound: Duration = .seconds(10),
    file: String = #fileID,
    line: Int = #line,
    _ operation: () async throws -> T
) async throws {
    let clock = ContinuousClock()
    let started = clock.now
    let error = try await expectError(.connectionFailed, file: file, line: line, operation)
    let took = started.duration(to: clock.now)
    guard error.message.contains("TLS") else {
        throw ConformanceFailure("the refusal does not name TLS: \(error)", file: file, line: line)
    }
    guard took < bound else {
        throw ConformanceFailure(
            "refused after \(took), not at once (bound \(bound)): \(error)", file: file, line: line)
    }
}
