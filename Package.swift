// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-coordination",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Coordination", targets: ["Coordination"]),
        .library(name: "CoordinationCore", targets: ["CoordinationCore"]),
        .library(name: "CoordinationMemory", targets: ["CoordinationMemory"]),
        .library(name: "CoordinationEtcd", targets: ["CoordinationEtcd"]),
        .library(name: "CoordinationEtcdV2", targets: ["CoordinationEtcdV2"]),
        .library(name: "CoordinationConsul", targets: ["CoordinationConsul"]),
        .library(name: "CoordinationZooKeeper", targets: ["CoordinationZooKeeper"]),
        .library(name: "CoordinationTestKit", targets: ["CoordinationTestKit"]),
        .executable(name: "coordctl", targets: ["coordctl"]),
        .executable(name: "coordination-demo", targets: ["coordination-demo"]),
        .executable(name: "coordination-service", targets: ["coordination-service"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.28.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "CoordinationCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationMemory",
            dependencies: [
                "CoordinationCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationNIO",
            dependencies: [
                "CoordinationCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationEtcd",
            dependencies: [
                "CoordinationCore",
                "CoordinationNIO",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Generated/README.md"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationEtcdV2",
            dependencies: [
                "CoordinationCore",
                "CoordinationNIO",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationConsul",
            dependencies: [
                "CoordinationCore",
                "CoordinationNIO",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationZooKeeper",
            dependencies: [
                "CoordinationCore",
                "CoordinationNIO",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Coordination",
            dependencies: [
                "CoordinationCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CoordinationTestKit",
            dependencies: [
                "CoordinationCore",
                "Coordination",
                "CoordinationNIO",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "coordctl",
            dependencies: [
                "Coordination",
                "CoordinationMemory",
                "CoordinationEtcd",
                "CoordinationEtcdV2",
                "CoordinationConsul",
                "CoordinationZooKeeper",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "coordination-demo",
            dependencies: [
                "Coordination",
                "CoordinationMemory",
                "CoordinationEtcd",
                "CoordinationEtcdV2",
                "CoordinationConsul",
                "CoordinationZooKeeper",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/coordination-demo",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "coordination-service",
            dependencies: [
                "Coordination",
                "CoordinationMemory",
                "CoordinationEtcd",
                "CoordinationEtcdV2",
                "CoordinationConsul",
                "CoordinationZooKeeper",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Examples/coordination-service",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "coordination-fault-peer",
            dependencies: [
                "Coordination",
                "CoordinationCore",
                "CoordinationMemory",
                "CoordinationEtcd",
                "CoordinationEtcdV2",
                "CoordinationConsul",
                "CoordinationZooKeeper",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/FaultPeer",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinationCoreTests",
            dependencies: ["CoordinationCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinationEtcdTests",
            dependencies: [
                "CoordinationCore",
                "CoordinationEtcd",
                "CoordinationTestKit",
                "Coordination",
                "coordination-fault-peer",
                "coordination-service",
                "coordctl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinationEtcdV2Tests",
            dependencies: [
                "CoordinationCore", "CoordinationEtcdV2", "CoordinationTestKit", "Coordination",
                "coordination-fault-peer",
                "coordination-service", "coordctl", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinationConsulTests",
            dependencies: [
                "CoordinationCore", "CoordinationConsul", "CoordinationTestKit", "Coordination",
                "coordination-fault-peer", "coordination-service", "coordctl",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinationZooKeeperTests",
            dependencies: [
                "CoordinationCore",
                "CoordinationNIO",
                "CoordinationZooKeeper",
                "CoordinationTestKit",
                "Coordination",
                "coordination-fault-peer",
                "coordination-service",
                "coordctl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DocSnippetTests",
            dependencies: [
                "Coordination",
                "CoordinationCore",
                "CoordinationMemory",
                "CoordinationEtcd",
                "CoordinationEtcdV2",
                "CoordinationConsul",
                "CoordinationZooKeeper",
                "CoordinationTestKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinationMemoryTests",
            dependencies: [
                "CoordinationCore", "CoordinationMemory", "CoordinationTestKit", "Coordination", "coordctl",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
