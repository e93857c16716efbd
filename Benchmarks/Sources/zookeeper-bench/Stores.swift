import CoordinationCore
import CoordinationZooKeeper

/// One client of the server under test, as one KazooClient on kazoo's side: a `ZooKeeperStore`
/// has its own ZooKeeper session and connection (reads, watches, releases), and each session made
/// from it one more (its contenders' ephemeral znodes).
func makeStore(_ options: Options) throws -> ZooKeeperStore {
    try ZooKeeperStore(
        configuration: .init(
            endpoints: options.endpoints.map { .init(host: $0.host, port: $0.port) },
            chroot: options.chroot,
            sessionTimeout: options.storeSessionTimeout))
}

/// Runs `count` clients for the duration of `body`, then closes them (closing ends their sessions,
/// so no znode of this run outlives it).
func withStores<Result: Sendable>(
    _ count: Int,
    _ options: Options,
    _ body: ([ZooKeeperStore]) async throws -> Result
) async throws -> Result {
    try await withRunning(try (0..<count).map { _ in try makeStore(options) }, body)
}
