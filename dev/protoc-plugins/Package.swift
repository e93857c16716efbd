// swift-tools-version: 6.1
// Builds the protoc plugin that scripts/generate-protos uses (swift-protobuf's protoc-gen-swift). Kept apart from the main package so
// that building the library never compiles code generators.
import PackageDescription

let package = Package(
    name: "protoc-plugins",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0")
    ]
)
