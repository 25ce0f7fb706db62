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

/// A name no other test uses.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(ProcessInfo.processInfo.processIdentifier)-\(counter.add(1, ordering: .relaxed).newValue)"
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

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "Timed out: \(what)" }
}

/// Runs `body` with a deadline; the test fails (throws) instead of hanging.
func withDeadline<T: Sendable>(
    _ what: String,
    _ limit: Duration = .seconds(60),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let result = try await group.next(), let value = result else { throw TimedOut(what: what) }
        return value
    }
}

/// Runs a producer's `run()` around `body`, then shuts it down gracefully and waits for it.
func withRunning<T: Sendable>(
    _ producer: KafkaProducer,
    _ body: @escaping @Sendable (KafkaProducer) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await producer.run()
            return nil
        }
        let result: T
        do {
            result = try await body(producer)
        } catch {
            producer.triggerGracefulShutdown()
            throw error
        }
        producer.triggerGracefulShutdown()
        try await group.waitForAll()
        return result
    }
}

/// Starts a consumer, reads `count` messages, then shuts it down gracefully the way a service would: the loop
/// runs on until the sequence ends, so the last message counts as handled.
func consume(
    _ consumer: KafkaConsumer,
    count: Int,
    limit: Duration = .seconds(60),
    onMessage: @escaping @Sendable (KafkaConsumerMessage) async throws -> Void = { _ in }
) async throws -> [KafkaConsumerMessage] {
    try await withDeadline("consuming \(count) messages", limit) {
        try await withThrowingTaskGroup(of: [KafkaConsumerMessage].self) { group in
            group.addTask {
                try await consumer.run()
                return []
            }
            var received: [KafkaConsumerMessage] = []
            if count > 0 {
                for try await message in consumer.messages {
                    try await onMessage(message)
                    received.append(message)
                    if received.count == count { consumer.triggerGracefulShutdown() }
                }
            } else {
                consumer.triggerGracefulShutdown()
            }
            try await group.waitForAll()
            return received
        }
    }
}

/// Test state shared between tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
