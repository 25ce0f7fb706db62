// swift-tools-version:6.2
// What tracing costs with a production tracer: TracedKafka with swift-otel, against raw librdkafka, per record.
// A package of its own (swift-otel takes minutes to build), next to the other benchmarks; Benchmarks/otel-cost
// drives it.
import PackageDescription

let package = Package(
    name: "TracedKafkaOTelBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The name keeps `package: "TracedKafka"` valid whatever the clone's directory is called.
        .package(name: "TracedKafka", path: "../.."),
        .package(name: "TracedKafkaBenchmarks", path: ".."),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        .executableTarget(
            name: "otel-cost",
            dependencies: [
                .product(name: "TracedKafka", package: "TracedKafka"),
                .product(name: "BenchmarkSupport", package: "TracedKafkaBenchmarks"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
