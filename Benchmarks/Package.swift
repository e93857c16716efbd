// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for swift-coordination, in their own package so that the library does not depend on
// ordo-one's benchmark package (formerly package-benchmark; its plugin warns about the old name).
// Run from this directory:
//
//     swift run -c release coordination-bench      # one table, with the targets
//     swift package benchmark                      # the benchmark-plugin suite (percentiles, mallocs)
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
    ],
    targets: [
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
    ],
    swiftLanguageModes: [.v6]
)
