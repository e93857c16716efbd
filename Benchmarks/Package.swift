// swift-tools-version: 6.1
import PackageDescription

// Every benchmark of swift-coordination, in one package of its own so that the library does not
// depend on ordo-one's benchmark package (formerly package-benchmark). One executable per backend,
// sharing the support code; `./run BACKEND` builds the one it needs (release) and, for a network
// backend, starts the server and the peer it is compared with:
//
//     ./run memory        # coordination-bench: the in-memory store's table, with the targets
//     ./run etcd          # etcd-bench beside etcd's Go client (etcd/run)
//     ./run zookeeper     # zookeeper-bench beside kazoo (zookeeper/run)
//     ./run consul        # consul-bench beside `consul lock` (consul/run)
//     swift package benchmark    # the benchmark-plugin suite of the in-memory store (percentiles, mallocs)
//
// See README.md.

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-coordination-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-coordination", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
    ],
    targets: [
        // What the backend benchmarks share and that knows no backend: latency samples and their
        // percentiles, the lock hand-off recorder, `--name value` arguments, and one blocking TCP
        // exchange for reading a server's own counters.
        .target(name: "BenchSupport", swiftSettings: strictSettings),
        .target(
            name: "CoordinationBenchmarkSupport",
            dependencies: [
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationMemory", package: "swift-coordination"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "MemoryStoreBenchmarks",
            dependencies: [
                "CoordinationBenchmarkSupport",
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationMemory", package: "swift-coordination"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/MemoryStoreBenchmarks",
            swiftSettings: strictSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "coordination-bench",
            dependencies: [
                "CoordinationBenchmarkSupport",
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationMemory", package: "swift-coordination"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "etcd-bench",
            dependencies: [
                "BenchSupport",
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationEtcd", package: "swift-coordination"),
                .product(name: "CoordinationTestKit", package: "swift-coordination"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "zookeeper-bench",
            dependencies: [
                "BenchSupport",
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationZooKeeper", package: "swift-coordination"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "consul-bench",
            dependencies: [
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationConsul", package: "swift-coordination"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
