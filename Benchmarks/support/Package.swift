// swift-tools-version: 6.1
import PackageDescription

// What the backend benchmarks' Swift sides (../etcd/swift, ../zookeeper/swift) share and that knows
// no backend: latency samples and their percentiles, the lock hand-off recorder, `--name value`
// arguments, and one blocking TCP exchange for reading a server's own counters. Each of those
// packages depends on this one by path.

let package = Package(
    name: "swift-coordination-bench-support",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "BenchSupport", targets: ["BenchSupport"]),
    ],
    targets: [
        .target(
            name: "BenchSupport",
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
