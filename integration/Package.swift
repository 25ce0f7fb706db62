// swift-tools-version:6.2
// The integration suite: runs against a running Kafka broker over TCP (KAFKA_BOOTSTRAP_SERVERS, set by
// integration/run), plus fault tests on embedded clusters of its own and the cross-language checks.
import PackageDescription

let package = Package(
    name: "TracedKafkaIntegration",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` pins the identity: a path dependency's identity is otherwise the clone's directory name.
        .package(name: "TracedKafka", path: ".."),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", from: "1.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "it-consumer",
            dependencies: [.product(name: "TracedKafka", package: "TracedKafka")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                .product(name: "TracedKafka", package: "TracedKafka"),
                .product(name: "TracedKafkaTesting", package: "TracedKafka"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
