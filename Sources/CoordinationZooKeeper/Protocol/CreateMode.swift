/// The `flags` of a create request (`CreateMode` in ZooKeeper 3.8). TTL modes are not offered.
enum CreateMode: Int32, Sendable, CaseIterable {
    case persistent = 0
    case ephemeral = 1
    case persistentSequential = 2
    case ephemeralSequential = 3
    /// Removed by the server once its last child is gone (ZooKeeper ≥ 3.5.3).
    case container = 4

    var isEphemeral: Bool { self == .ephemeral || self == .ephemeralSequential }
    var isSequential: Bool { self == .persistentSequential || self == .ephemeralSequential }
}

/// The mode of an addWatch request (`AddWatchMode`, ZooKeeper ≥ 3.6).
enum AddWatchMode: Int32, Sendable {
    case persistent = 0
    case persistentRecursive = 1
}
