@_spi(Backend) import CoordinationCore
import NIOHTTP1
import Synchronization

/// Consul's own service catalog: agent services with a TTL check, and `/v1/health/service`.
extension ConsulStore {
    static func checkID(forService id: String) -> String { "service:\(id)" }

    /// Service names and ids go into URLs: they follow the key segment rules.
    private func validated(_ text: String, _ what: String) throws(CoordinationError) -> String {
        guard let key = try? Key(text), key.segments.count == 1, key.path == text else {
            throw errors.make(.invalidKey, "a service \(what) must be a single key segment (got '\(text)')")
        }
        return text
    }

    public func registerService(_ record: NativeServiceRecord, ttl: Duration) async throws(CoordinationError) {
        let id = try validated(record.id, "id")
        let name = try validated(record.name, "name")
        guard ttl >= .seconds(1) else {
            throw errors.make(.invalidArgument, "a service check TTL must be at least 1 s (got \(ttl))")
        }
        let body = ConsulWire.encode(
            ConsulWire.ServiceRegistration(
                ID: id,
                Name: name,
                Address: record.address,
                Port: record.port,
                Meta: record.metadata,
                Check: .init(
                    CheckID: Self.checkID(forService: id),
                    Name: "swift-coordination heartbeat",
                    TTL: ttl.consulText,
                    Status: "passing",
                    DeregisterCriticalServiceAfter: configuration.deregisterCriticalServiceAfter.consulText
                )
            ))
        let response = try await send(.PUT, "/v1/agent/service/register", body: body, operation: "registerService")
        guard response.isSuccess else { throw errors.status(response, "registerService") }
    }

    public func passServiceCheck(id: String) async throws(CoordinationError) {
        let id = try validated(id, "id")
        let response = try await send(
            .PUT, "/v1/agent/check/pass/\(Self.checkID(forService: id))", query: [("note", "heartbeat")],
            operation: "passServiceCheck")
        if response.isSuccess { return }
        // Consul 1.8 answers an unknown check with 500 "Unknown check ID" (404 in later versions).
        let text = response.text.lowercased()
        if response.status == 404 || text.contains("unknown check") || text.contains("does not have associated ttl") {
            throw errors.make(.keyNotFound, "the agent no longer knows service \(id): register again")
        }
        throw errors.status(response, "passServiceCheck")
    }

    public func deregisterService(id: String) async throws(CoordinationError) {
        let id = try validated(id, "id")
        let response = try await send(.PUT, "/v1/agent/service/deregister/\(id)", operation: "deregisterService")
        if response.isSuccess || response.status == 404 { return }
        if response.text.lowercased().contains("unknown service") { return }
        throw errors.status(response, "deregisterService")
    }

    public func healthyServices(named name: String) async throws(CoordinationError) -> [NativeServiceRecord] {
        try await readHealthy(try validated(name, "name"), index: nil).records
    }

    public func watchHealthyServices(named name: String) async throws(CoordinationError) -> NativeMembershipStream {
        let name = try validated(name, "name")
        let (firstIndex, firstRecords) = try await readHealthy(name, index: nil)
        let (stream, continuation) = NativeMembershipStream.makeStream(bufferingPolicy: .unbounded)
        continuation.yield(firstRecords)
        let retryWindow = configuration.requestTimeout * 2
        let fail: @Sendable (CoordinationError) -> Void = { continuation.finish(throwing: $0) }
        let stop = try watches.add(fail: fail) { [weak self] in
            var index = BlockingView.sanitized(firstIndex)
            var last = firstRecords
            var failingSince: ContinuousClock.Instant?
            while !Task.isCancelled, let store = self {
                do throws(CoordinationError) {
                    let (newIndex, records) = try await store.readHealthy(name, index: index)
                    failingSince = nil
                    // Same rules as for keys: 0 counts as 1, a backwards index is a reset.
                    index = BlockingView.sanitized(newIndex)
                    if records != last {
                        last = records
                        if case .terminated = continuation.yield(records) { return }
                    }
                } catch {
                    if Task.isCancelled || error.code == .cancelled { return }
                    let since = failingSince ?? .now
                    failingSince = since
                    guard [.connectionFailed, .timeout, .serverError].contains(error.code),
                        ContinuousClock.now - since < retryWindow
                    else {
                        continuation.finish(throwing: error)
                        return
                    }
                    try? await Task.sleep(for: Duration.milliseconds(200).jittered())
                }
            }
        }
        continuation.onTermination = { _ in stop.signal() }
        return stream
    }

    private func readHealthy(_ name: String, index: UInt64?) async throws(CoordinationError)
        -> (index: UInt64?, records: [NativeServiceRecord])
    {
        var query: [(String, String?)] = [("passing", nil)]
        if let index { query += [("index", String(index)), ("wait", configuration.blockingWait.consulText)] }
        let response = try await send(
            .GET, "/v1/health/service/\(name)", query: query, timeout: index == nil ? nil : blockingTimeout,
            operation: "healthyServices")
        guard response.isSuccess else { throw errors.status(response, "healthyServices") }
        guard let entries = ConsulWire.decode([ConsulWire.HealthEntry].self, response.body) else {
            throw errors.make(.protocolError, "healthyServices: unreadable answer from Consul")
        }
        return (response.index, entries.map(\.record).sorted { $0.id < $1.id })
    }
}
