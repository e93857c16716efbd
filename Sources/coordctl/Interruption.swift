import UnixSignals

/// Long-running commands run until they finish or the user stops them (SIGINT, SIGTERM).
enum Interruption {
    /// Runs `body` until it returns or a SIGINT/SIGTERM arrives; a signal cancels it (a wait it
    /// was in is cleaned up as on any cancellation). `nil` when a signal came first.
    static func run<Value: Sendable>(_ body: @escaping @Sendable () async throws -> Value) async throws -> Value? {
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        return try await withThrowingTaskGroup(of: Value??.self) { group in
            group.addTask { .some(try await body()) }
            group.addTask {
                for await _ in signals { return .some(nil) }
                return nil
            }
            defer { group.cancelAll() }
            while let outcome = try await group.next() {
                if let outcome { return outcome }
            }
            return nil
        }
    }
}
