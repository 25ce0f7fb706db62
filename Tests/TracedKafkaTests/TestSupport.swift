import Foundation
import Synchronization
import Testing
import TracedKafka
import TracedKafkaTesting

/// The cluster shared by the tests that inject no faults: `KAFKA_BOOTSTRAP_SERVERS`, or one embedded broker.
/// Each test uses topics and groups of its own.
enum SharedCluster {
    static let cluster: KafkaTestCluster = {
        do { return try KafkaTestCluster.fromEnvironment() } catch { fatalError("Could not start the embedded cluster: \(error)") }
    }()
}

/// What the client configurations need of a cluster.
protocol BootstrapProviding {
    var bootstrapServerList: [String] { get }
}

extension KafkaTestCluster: BootstrapProviding {}
extension EmbeddedKafkaCluster: BootstrapProviding {}

private let counter = Atomic<Int>(0)
/// Random per run: a process id alone repeats (containers), and a cluster that outlives the run keeps its topics.
private let runToken = String(UInt32.random(in: .min ... .max), radix: 36)

/// A name no other test uses.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(runToken)-\(counter.add(1, ordering: .relaxed).newValue)"
}

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

/// The backends the shared tests run against: the embedded broker (or `KAFKA_BOOTSTRAP_SERVERS`) through librdkafka,
/// and the local file queue in a directory of this test run's own.
enum TestBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case librdkafka
    case fileQueue

    var testDescription: String { rawValue }

    /// The file queue's directory for this test process.
    static let fileQueueDirectory: String = {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tracedkafka-tests-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }()

    var backend: KafkaBackend {
        switch self {
        case .librdkafka: return .librdkafka
        case .fileQueue: return .fileQueue(directory: Self.fileQueueDirectory)
        }
    }

    /// Creates a topic with a name no other test uses.
    func newTopic(_ prefix: String, partitions: Int = 1) async throws -> String {
        let topic = uniqueName(prefix)
        switch self {
        case .librdkafka: try await SharedCluster.cluster.createTopic(topic, partitions: partitions)
        case .fileQueue: try KafkaFileQueue.createTopic(topic, partitions: partitions, in: Self.fileQueueDirectory)
        }
        return topic
    }
}

func producerConfiguration(_ backend: TestBackend, properties: [String: String] = [:]) -> KafkaProducerConfiguration {
    var configuration = producerConfiguration(SharedCluster.cluster, properties: properties)
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
        SharedCluster.cluster, group: group, topics: topics, commitMode: commitMode, properties: properties
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
