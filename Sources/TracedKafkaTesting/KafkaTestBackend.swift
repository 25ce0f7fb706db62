import Foundation
import Synchronization
import TracedKafka

private let uniqueNameCounter = Atomic<Int>(0)
/// Random per process: a process id alone repeats (containers), and a cluster that outlives the run keeps its topics.
private let uniqueNameToken = String(UInt32.random(in: .min ... .max), radix: 36)

/// A name no other call in this process returns, and that a run before it is unlikely to have left on a cluster:
/// `<prefix>-<a random token of this process>-<a counter>`. For the topics, groups and directories of one test each,
/// so that tests can run in parallel on one cluster or queue directory.
///
/// ```swift
/// import TracedKafkaTesting
///
/// let topic = uniqueName("orders")  // "orders-1x9kq3-7"
/// ```
/// - Parameter prefix: What the name starts with; for a topic, in Kafka's characters (letters, digits, `.`, `_`, `-`).
/// - Returns: The name.
public func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(uniqueNameToken)-\(uniqueNameCounter.add(1, ordering: .relaxed).newValue)"
}

extension KafkaTestCluster {
    /// The cluster of this test process, started on first use: ``fromEnvironment(brokers:)`` with one broker (the
    /// cluster named by `KAFKA_BOOTSTRAP_SERVERS`, else an embedded broker). Tests that inject no faults share it,
    /// each with topics and groups of its own (``uniqueName(_:)``); a test that injects faults starts an
    /// ``EmbeddedKafkaCluster`` of its own.
    ///
    /// The process stops with a `fatalError` naming the cause when the embedded broker cannot start: no test that
    /// needs it could run.
    public static let shared: KafkaTestCluster = {
        do { return try KafkaTestCluster.fromEnvironment() } catch { fatalError("Could not start the embedded cluster: \(error)") }
    }()
}

/// The two backends a test can run the same code on: Kafka through librdkafka (on ``KafkaTestCluster/shared``), and
/// the file queue (in ``fileQueueDirectory``).
///
/// One test body covers both; with Swift Testing, mark it `@Test(arguments: KafkaTestBackend.allCases)`:
///
/// ```swift
/// import TracedKafka
/// import TracedKafkaTesting
///
/// func roundTrip(backend: KafkaTestBackend) async throws {
///     let topic = try await backend.newTopic("orders")
///     var configuration = KafkaProducerConfiguration(bootstrapServers: KafkaTestCluster.shared.bootstrapServerList)
///     configuration.backend = backend.backend
///     // …
/// }
/// ```
public enum KafkaTestBackend: String, CaseIterable, Sendable {
    /// Kafka through librdkafka, on ``KafkaTestCluster/shared``.
    case librdkafka
    /// The file queue, in ``KafkaTestBackend/fileQueueDirectory``.
    case fileQueue

    /// The file queue's directory for this test process: `tracedkafka-tests-<process id>` in the temporary
    /// directory, emptied when first asked for (a process id can repeat).
    public static let fileQueueDirectory: String = {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tracedkafka-tests-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }()

    /// The backend, for `KafkaProducerConfiguration.backend` or `KafkaConsumerConfiguration.backend`. The
    /// bootstrap servers a librdkafka configuration needs are ``KafkaTestCluster/shared``'s.
    public var backend: KafkaBackend {
        switch self {
        case .librdkafka: return .librdkafka
        case .fileQueue: return .fileQueue(directory: Self.fileQueueDirectory)
        }
    }

    /// Creates a topic with a name no other test uses (``uniqueName(_:)``).
    /// - Parameters:
    ///   - prefix: What the topic's name starts with.
    ///   - partitions: How many partitions it has.
    /// - Returns: The topic's name.
    /// - Throws: `KafkaError` when the cluster or the file queue refuses the topic.
    public func newTopic(_ prefix: String, partitions: Int = 1) async throws -> String {
        let topic = uniqueName(prefix)
        switch self {
        case .librdkafka: try await KafkaTestCluster.shared.createTopic(topic, partitions: partitions)
        case .fileQueue: try KafkaFileQueue.createTopic(topic, partitions: partitions, in: Self.fileQueueDirectory)
        }
        return topic
    }
}
