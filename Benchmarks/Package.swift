// swift-tools-version:6.2
import PackageDescription

// Benchmarks live in their own package so the root package stays quick to build.
let package = Package(
    name: "TracedKafkaBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "TracedKafka", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "file-queue-throughput",
            dependencies: [.product(name: "TracedKafka", package: "TracedKafka")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
