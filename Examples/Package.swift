// swift-tools-version:6.2
// TracedKafka's examples: services that trace across Kafka and export with swift-otel over OTLP/HTTP.
// A package of its own, so swift-otel (and its HTTP client) never slows down building the library itself.
import PackageDescription

/// What every example executable uses.
let exampleDependencies: [Target.Dependency] = [
    "ExampleSupport",
    .product(name: "TracedKafka", package: "TracedKafka"),
    .product(name: "Logging", package: "swift-log"),
    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    .product(name: "Tracing", package: "swift-distributed-tracing"),
]

let package = Package(
    name: "TracedKafkaExamples",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "request-producer", targets: ["request-producer"]),
        .executable(name: "downstream-consumer", targets: ["downstream-consumer"]),
        .executable(name: "order-pipeline", targets: ["order-pipeline"]),
    ],
    dependencies: [
        // The library, from this repository. The name keeps `package: "TracedKafka"` valid whatever the clone's
        // directory is called (a path dependency is otherwise known by its directory name).
        .package(name: "TracedKafka", path: ".."),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        // What every example shares: swift-otel's bootstrap and finding a broker.
        .target(
            name: "ExampleSupport",
            dependencies: [
                .product(name: "TracedKafka", package: "TracedKafka"),
                .product(name: "TracedKafkaTesting", package: "TracedKafka"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "request-producer", dependencies: exampleDependencies),
        .executableTarget(name: "downstream-consumer", dependencies: exampleDependencies),
        // The launcher starts each service as a child process with TracedKafkaTesting's ChildProcess.
        .executableTarget(
            name: "order-pipeline",
            dependencies: exampleDependencies + [.product(name: "TracedKafkaTesting", package: "TracedKafka")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
