// swift-tools-version: 6.1
import PackageDescription

// The Consul benchmark, in a package of its own so that it builds without the benchmark tooling of
// ../Package.swift (and without gRPC). Run through ./run, which starts its own Consul agent.

let package = Package(
    name: "swift-coordination-consul-benchmark",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-coordination", path: "../.."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "consul-bench",
            dependencies: [
                .product(name: "Coordination", package: "swift-coordination"),
                .product(name: "CoordinationCore", package: "swift-coordination"),
                .product(name: "CoordinationConsul", package: "swift-coordination"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
