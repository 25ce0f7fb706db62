// swift-tools-version:6.2
import PackageDescription

// Benchmarks live in their own package so the root package stays quick to build.
let package = Package(
    name: "TracedKafkaBenchmarks",
    platforms: [.macOS(.v15)],
    products: [
        // For Benchmarks/OTel, the swift-otel cost tool, which lives in a package of its own.
        .library(name: "BenchmarkSupport", targets: ["BenchmarkSupport"]),
    ],
    dependencies: [
        .package(name: "TracedKafka", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        // ByteBuffer records (TracedKafkaNIO); the same requirement as the root package's.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // Microbenchmarks (ordo-one/benchmark): `swift package benchmark` in this folder.
        .executableTarget(
            name: "TracedKafkaMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TracedKafka", package: "TracedKafka"),
                .product(name: "TracedKafkaTesting", package: "TracedKafka"),
                .product(name: "TracedKafkaNIO", package: "TracedKafka"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/TracedKafkaMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .systemLibrary(name: "CRdKafkaBench", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // What the cost tools share: arguments, metering, raw librdkafka loops.
        .target(name: "BenchmarkSupport", dependencies: ["CRdKafkaBench", .product(name: "TracedKafka", package: "TracedKafka")]),
        .executableTarget(
            name: "kafka-throughput",
            dependencies: [
                "BenchmarkSupport",
                "CRdKafkaBench",
                .product(name: "TracedKafka", package: "TracedKafka"),
                .product(name: "TracedKafkaTesting", package: "TracedKafka"),
            ]
        ),
        .executableTarget(
            name: "consume-cost",
            dependencies: [
                "BenchmarkSupport",
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
