// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "TracedKafka",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TracedKafka", targets: ["TracedKafka"]),
        .library(name: "TracedKafkaTesting", targets: ["TracedKafkaTesting"]),
        // SwiftNIO `ByteBuffer` keys, values and header values: a product of its own, so that TracedKafka itself
        // never depends on SwiftNIO.
        .library(name: "TracedKafkaNIO", targets: ["TracedKafkaNIO"]),
        .executable(name: "local-kafka", targets: ["local-kafka"]),
        .executable(name: "tracedkafka-demo", targets: ["tracedkafka-demo"]),
        .executable(name: "tracedkafka-queue", targets: ["tracedkafka-queue"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        // TracedKafkaNIO only.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Documentation only (`swift package generate-documentation`): a plugin, linked into nothing.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "TracedKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "TracedKafkaTesting",
            dependencies: [
                "TracedKafka",
                "CRdKafka",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
        .target(
            name: "TracedKafkaNIO",
            dependencies: [
                "TracedKafka",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "local-kafka",
            dependencies: ["TracedKafkaTesting"]
        ),
        .executableTarget(
            name: "tracedkafka-demo",
            dependencies: [
                "TracedKafka",
                "TracedKafkaTesting",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .executableTarget(
            name: "tracedkafka-queue",
            dependencies: ["TracedKafka", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "TracedKafkaTests",
            dependencies: [
                "TracedKafka",
                "TracedKafkaTesting",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "TracedKafkaNIOTests",
            dependencies: [
                "TracedKafka",
                "TracedKafkaNIO",
                "TracedKafkaTesting",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
