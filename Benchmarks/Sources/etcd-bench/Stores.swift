import CoordinationCore
import CoordinationEtcd
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One client of the member under test: an `EtcdStore` has its own connection, lease stream and
/// watch stream, as one process of an application would.
func makeStore(_ options: Options) throws -> EtcdStore {
    var logger = Logger(label: "etcd-bench")
    logger.logLevel = getenv("ETCD_BENCH_LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .warning
    return try EtcdStore(
        configuration: .init(
            endpoints: [Endpoint(host: options.endpoint.host, port: options.endpoint.port)], logger: logger))
}

/// Runs `count` clients for the duration of `body`, then closes them (closing revokes their
/// sessions, so no key of this run outlives it).
func withStores<Result: Sendable>(
    _ count: Int,
    _ options: Options,
    _ body: ([EtcdStore]) async throws -> Result
) async throws -> Result {
    try await withRunning(try (0..<count).map { _ in try makeStore(options) }, body)
}
