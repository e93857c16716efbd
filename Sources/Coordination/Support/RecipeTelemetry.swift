@_spi(Backend) import CoordinationCore
import Tracing

/// A grant as an acquire produced it: the value handed to the caller, whether it waited behind
/// another holder first (a hand-off), and its token.
struct Acquired<Value: Sendable>: Sendable {
    var value: Value
    var waited: Bool
    var token: FencingToken
}

/// The metrics and span of one recipe on one store (see ``Telemetry``): what every acquire,
/// campaign, release and loss records. Dimensions: backend and recipe, never a key.
struct RecipeTelemetry: Sendable {
    let backend: String
    let recipe: String

    static let lock = "lock"
    static let semaphore = "semaphore"
    static let election = "election"

    init(_ recipe: String, store: any KeyValueStore) {
        self.backend = store.storeDescription.backend
        self.recipe = recipe
    }

    private var dimensions: [(String, String)] { [("backend", backend), ("recipe", recipe)] }

    /// Runs an acquire or a campaign in a span named `span`, and records its outcome, its wait and
    /// its grant.
    func acquire<Value: Sendable>(
        _ span: String, _ body: () async throws(CoordinationError) -> Acquired<Value>
    ) async throws(CoordinationError) -> Value {
        try await measured(span, body, granted: { $0 }).value
    }

    /// ``acquire(_:_:)`` for a try that may find no free slot (`nil`, outcome `notGranted`).
    func tryAcquire<Value: Sendable>(
        _ span: String, _ body: () async throws(CoordinationError) -> Acquired<Value>?
    ) async throws(CoordinationError) -> Value? {
        try await measured(span, body, granted: { $0 })?.value
    }

    private func measured<Outcome, Value: Sendable>(
        _ span: String, _ body: () async throws(CoordinationError) -> Outcome,
        granted: (Outcome) -> Acquired<Value>?
    ) async throws(CoordinationError) -> Outcome {
        let started = ContinuousClock.now
        return try await Telemetry.withSpan(
            span, attributes: [(Telemetry.Attribute.backend, backend), (Telemetry.Attribute.recipe, recipe)]
        ) { span throws(CoordinationError) in
            let result: Outcome
            do throws(CoordinationError) {
                result = try await body()
            } catch {
                record(outcome: Self.outcome(of: error), since: started)
                span?.attributes[Telemetry.Attribute.outcome] = Self.outcome(of: error)
                throw error
            }
            guard let grant = granted(result) else {
                record(outcome: "notGranted", since: started)
                span?.attributes[Telemetry.Attribute.outcome] = "notGranted"
                return result
            }
            record(outcome: "granted", since: started)
            span?.attributes[Telemetry.Attribute.outcome] = "granted"
            span?.attributes[Telemetry.Attribute.token] = Int64(truncatingIfNeeded: grant.token.value)
            Telemetry.count(Telemetry.Metric.grants, dimensions)
            if grant.waited { Telemetry.count(Telemetry.Metric.handoffs, dimensions) }
            return result
        }
    }

    private func record(outcome: String, since started: ContinuousClock.Instant) {
        let dimensions = self.dimensions + [("outcome", outcome)]
        Telemetry.count(Telemetry.Metric.acquires, dimensions)
        Telemetry.record(Telemetry.Metric.acquireWait, dimensions, .now - started)
    }

    /// A grant held since `grantedAt` was released (`lost: false`) or lost.
    func ended(grantedAt: ContinuousClock.Instant, lost: Bool) {
        Telemetry.record(Telemetry.Metric.hold, dimensions + [("end", lost ? "lost" : "released")], .now - grantedAt)
        if lost { Telemetry.count(Telemetry.Metric.lost, dimensions) }
    }

    static func outcome(of error: CoordinationError) -> String {
        switch error.code {
        case .timeout: "timeout"
        case .cancelled: "cancelled"
        case .lockLost, .sessionExpired, .sessionClosed: "lost"
        default: "failed"
        }
    }
}
