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
        .systemLibrary(name: "CRdKafkaBench", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .executableTarget(
            name: "kafka-throughput",
            dependencies: [
                "CRdKafkaBench",
                .product(name: "TracedKafka", package: "TracedKafka"),
                .product(name: "TracedKafkaTesting", package: "TracedKafka"),
            ]
        ),
        .executableTarget(
            name: "file-queue-throughput",
            dependencies: [.product(name: "TracedKafka", package: "TracedKafka")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
