import Foundation
import Synchronization
import TracedKafka
import TracedKafkaTesting

// A small copy of Tests/TracedKafkaTests/TestSupport.swift: the two backends the round trips run on. (Test targets
// cannot share a source file, and this is too little to make public API of TracedKafkaTesting.)

/// `KAFKA_BOOTSTRAP_SERVERS`, or one embedded broker for this test process.
enum SharedCluster {
    static let cluster: KafkaTestCluster = {
        do { return try KafkaTestCluster.fromEnvironment() } catch { fatalError("Could not start the embedded cluster: \(error)") }
    }()
}

private let counter = Atomic<Int>(0)
/// Random per run: a cluster that outlives the run keeps its topics.
private let runToken = String(UInt32.random(in: .min ... .max), radix: 36)

/// A name no other test uses.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(runToken)-\(counter.add(1, ordering: .relaxed).newValue)"
}

/// The embedded broker (or `KAFKA_BOOTSTRAP_SERVERS`) through librdkafka, and the file queue in a directory of this
/// test process's own.
enum TestBackend: String, CaseIterable, Sendable {
    case librdkafka
    case fileQueue

    static let fileQueueDirectory: String = {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tracedkafka-nio-tests-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }()

    var backend: KafkaBackend {
        switch self {
        case .librdkafka: return .librdkafka
        case .fileQueue: return .fileQueue(directory: Self.fileQueueDirectory)
        }
    }

    /// Creates a topic of one partition with a name no other test uses.
    func newTopic(_ prefix: String) async throws -> String {
        let topic = uniqueName(prefix)
        switch self {
        case .librdkafka: try await SharedCluster.cluster.createTopic(topic, partitions: 1)
        case .fileQueue: try KafkaFileQueue.createTopic(topic, partitions: 1, in: Self.fileQueueDirectory)
        }
        return topic
    }

    func producerConfiguration() -> KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(
            bootstrapServers: SharedCluster.cluster.bootstrapServerList, linger: .milliseconds(1)
        )
        configuration.backend = backend
        return configuration
    }

    /// A new group reading `topic` from its start, with quick group joins on the embedded broker.
    func consumerConfiguration(topic: String) -> KafkaConsumerConfiguration {
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: SharedCluster.cluster.bootstrapServerList,
            groupID: uniqueName("g"),
            topics: [topic],
            autoOffsetReset: .earliest,
            properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "200", "fetch.wait.max.ms": "50"]
        )
        configuration.backend = backend
        return configuration
    }

    /// Sends `records` one after another, then reads them back in a new group.
    func roundTrip(_ records: [KafkaProducerRecord]) async throws -> [KafkaConsumerMessage] {
        try await withRunning(try KafkaProducer(configuration: producerConfiguration())) { producer in
            for record in records { _ = try await producer.send(record) }
        }
        return try await handle(try KafkaConsumer(configuration: consumerConfiguration(topic: records[0].topic)), count: records.count)
    }
}
