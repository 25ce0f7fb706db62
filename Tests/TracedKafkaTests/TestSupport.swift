import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// What the client configurations need of a cluster.
protocol BootstrapProviding {
    var bootstrapServerList: [String] { get }
}

extension KafkaTestCluster: BootstrapProviding {}
extension EmbeddedKafkaCluster: BootstrapProviding {}

/// Consumer settings that make group joins and rebalances quick on the embedded cluster.
let fastGroupProperties = [
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "200",
    "topic.metadata.refresh.interval.ms": "500",
    "fetch.wait.max.ms": "50",
]

func producerConfiguration(_ cluster: some BootstrapProviding, properties: [String: String] = [:]) -> KafkaProducerConfiguration {
    KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList, linger: .milliseconds(1), properties: properties)
}

func consumerConfiguration(
    _ cluster: some BootstrapProviding,
    group: String,
    topics: [String],
    commitMode: KafkaConsumerConfiguration.CommitMode = .afterHandled(interval: .milliseconds(100)),
    properties: [String: String] = [:]
) -> KafkaConsumerConfiguration {
    KafkaConsumerConfiguration(
        bootstrapServers: cluster.bootstrapServerList,
        groupID: group,
        topics: topics,
        // The tests send first, then read in a new group: from the topic's start.
        autoOffsetReset: .earliest,
        commitMode: commitMode,
        properties: fastGroupProperties.merging(properties) { $1 }
    )
}

/// The backends the shared tests run against (`KafkaTestBackend` of TracedKafkaTesting, which the NIO tests use too).
typealias TestBackend = KafkaTestBackend

extension KafkaTestBackend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}

func producerConfiguration(_ backend: TestBackend, properties: [String: String] = [:]) -> KafkaProducerConfiguration {
    var configuration = producerConfiguration(KafkaTestCluster.shared, properties: properties)
    configuration.backend = backend.backend
    return configuration
}

func consumerConfiguration(
    _ backend: TestBackend,
    group: String,
    topics: [String],
    commitMode: KafkaConsumerConfiguration.CommitMode = .afterHandled(interval: .milliseconds(100)),
    properties: [String: String] = [:]
) -> KafkaConsumerConfiguration {
    var configuration = consumerConfiguration(
        KafkaTestCluster.shared, group: group, topics: topics, commitMode: commitMode, properties: properties
    )
    configuration.backend = backend.backend
    return configuration
}

/// Test state shared between tasks (under a lock ThreadSanitizer sees).
typealias Shared = LockedValue

/// Reads a producer's events to their end: how many records were delivered and how many failed (cluster errors are
/// not records' outcomes). `onEvent` runs after each event.
func countOutcomes(
    _ events: AsyncStream<KafkaProducerEvent>,
    onEvent: @Sendable () -> Void = {}
) async -> (delivered: Int, failed: Int) {
    var delivered = 0, failed = 0
    for await event in events {
        switch event {
        case .delivered: delivered += 1
        case .failed: failed += 1
        case .error: break
        }
        onEvent()
    }
    return (delivered, failed)
}
