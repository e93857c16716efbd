import Metrics
import Tracing

/// The metrics and spans the library emits, through the process-wide swift-metrics and
/// swift-distributed-tracing systems: nothing is recorded (and next to nothing spent) until the
/// application bootstraps a metrics backend (`MetricsSystem.bootstrap`) or a tracer
/// (`InstrumentationSystem.bootstrap`), as with every library of the Swift server ecosystem.
///
/// Dimensions are kept low-cardinality: the backend (`etcd`, `zookeeper`, `consul`, `etcdv2`,
/// `memory`), the recipe (`lock`, `semaphore`, `election`), an outcome or a reason. Key names,
/// session ids and values are never dimensions or span attributes. The names, and what each
/// counts, are listed in docs/observability.md; ``Metric`` holds them.
@_spi(Backend)
public enum Telemetry {
    /// The metric names.
    public enum Metric {
        /// Counter: acquire calls by outcome (`granted`, `notGranted` for a `tryAcquire` that found
        /// it taken, `timeout`, `cancelled`, `lost`, `failed`). Dimensions: backend, recipe, outcome.
        public static let acquires = "coordination_acquires_total"
        /// Timer: how long an acquire or campaign waited, whatever its outcome. Dimensions: backend,
        /// recipe, outcome.
        public static let acquireWait = "coordination_acquire_wait_seconds"
        /// Counter: grants (lock, permit, leadership). Dimensions: backend, recipe.
        public static let grants = "coordination_grants_total"
        /// Counter: grants that came after waiting behind another holder (a hand-off from a
        /// release, a loss or an expiry). Dimensions: backend, recipe.
        public static let handoffs = "coordination_handoffs_total"
        /// Timer: how long a grant was held, from the grant to its release or loss. Dimensions:
        /// backend, recipe, end (`released`, `lost`).
        public static let hold = "coordination_hold_seconds"
        /// Counter: grants lost while held (session ended, key removed). Dimensions: backend, recipe.
        public static let lost = "coordination_grants_lost_total"
        /// Counter: acknowledged keep-alives that extended a session's guarantee. Dimension: backend.
        public static let sessionRenewals = "coordination_session_renewals_total"
        /// Counter: sessions that expired (not closed by their owner). Dimension: backend.
        public static let sessionExpiries = "coordination_session_expiries_total"
        /// Counter: watch streams re-established after their connection or stream broke. Dimension:
        /// backend.
        public static let watchReconnects = "coordination_watch_reconnects_total"
        /// Counter: watches that could not resume without a gap and started again from a fresh
        /// snapshot (`historyLost`). Dimension: backend.
        public static let historyLost = "coordination_watch_history_lost_total"
    }

    /// The span attribute names.
    public enum Attribute {
        /// The backend (`etcd`, `zookeeper`…), on every span.
        public static let backend = "coordination.backend"
        /// The recipe (`lock`, `semaphore`, `election`), on recipe spans.
        public static let recipe = "coordination.recipe"
        /// The store operation (`get`, `put`, `txn`…), on store-call spans.
        public static let operation = "coordination.operation"
        /// How an acquire or campaign ended (`granted`, `timeout`…).
        public static let outcome = "coordination.outcome"
        /// The fencing token of a grant.
        public static let token = "coordination.fencing_token"
    }

    /// Adds `amount` to the counter `name`.
    public static func count(_ name: String, _ dimensions: [(String, String)], by amount: Int = 1) {
        Counter(label: name, dimensions: dimensions).increment(by: amount)
    }

    /// Records `duration` in the timer `name`.
    public static func record(_ name: String, _ dimensions: [(String, String)], _ duration: Duration) {
        Timer(label: name, dimensions: dimensions, preferredDisplayUnit: .seconds).record(duration: duration)
    }

    /// Whether a tracer other than the no-op one is active (bootstrapped, or bound to the task with
    /// `withTracer`).
    public static var isTracing: Bool { !(InstrumentationSystem.tracer is NoOpTracer) }

    /// Runs `body` in a span named `name` (a client span for store calls, an internal one for
    /// recipes); errors are recorded on it. Without a tracer, just runs `body` (given `nil`).
    public static func withSpan<Result>(
        _ name: String,
        kind: SpanKind = .internal,
        attributes: [(String, String)],
        _ body: ((any Span)?) async throws(CoordinationError) -> Result
    ) async throws(CoordinationError) -> Result {
        guard isTracing else { return try await body(nil) }
        do {
            return try await InstrumentationSystem.tracer.withSpan(name, ofKind: kind) { span in
                for (key, value) in attributes { span.attributes[key] = value }
                return try await body(span)
            }
        } catch {
            // `body` throws only CoordinationError.
            throw (error as? CoordinationError) ?? CoordinationError(.serverError, "\(name): \(error)")
        }
    }

    /// A span around one request of a store to its server: `<backend>.<operation>`, a client span
    /// with the backend and operation as attributes.
    /// `operation` is only evaluated when a tracer is active.
    public static func storeCall<Result>(
        backend: String, operation: @autoclosure () -> String, _ body: () async throws(CoordinationError) -> Result
    ) async throws(CoordinationError) -> Result {
        guard isTracing else { return try await body() }
        let operation = operation()
        return try await withSpan(
            "\(backend).\(operation)", kind: .client,
            attributes: [(Attribute.backend, backend), (Attribute.operation, operation)]
        ) { _ throws(CoordinationError) in try await body() }
    }
}
