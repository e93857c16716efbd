// swift-tools-version: 6.1
import PackageDescription

// The ZooKeeper benchmark's Swift side, the peer of ../kazoo_bench.py, in a package of its own so
// that it builds without the benchmark tooling of ../../Package.swift. Run through ../run, which
// starts ZooKeeper and runs kazoo too. What knows no backend (percentiles, the hand-off recorder,
// arguments, reading a server's counters) is in ../../support.

let package = Package(
    name: "swift-coordination-zookeeper-benchmark",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-coordination", path: "../../.."),
        .package(path: "../../support"),
    ],
    targets: [
        .executableTarget(
            name: "zookeeper-bench",
            dependencies: [
                .product(name: "BenchSupport", package: "support"),
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationZooKeeper", package: "swift-coordination"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
