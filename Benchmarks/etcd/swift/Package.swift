// swift-tools-version: 6.1
import PackageDescription

// The etcd benchmark's Swift side, in a package of its own so that it builds without the benchmark
// tooling of ../../Package.swift. Run through ../run, which starts etcd and the Go peer too. What
// knows no backend (percentiles, the hand-off recorder, arguments) is in ../../support.

let package = Package(
    name: "swift-coordination-etcd-benchmark",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-coordination", path: "../../.."),
        .package(path: "../../support"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
    ],
    targets: [
        .executableTarget(
            name: "etcd-bench",
            dependencies: [
                .product(name: "BenchSupport", package: "support"),
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationEtcd", package: "swift-coordination"),
                .product(name: "CoordinationTestKit", package: "swift-coordination"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
