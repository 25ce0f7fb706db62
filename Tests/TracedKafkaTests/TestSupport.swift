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
    .forTests(bootstrapServers: cluster.bootstrapServerList, group: group, topics: topics, commitMode: commitMode, properties: properties)
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

/// A running consumer's `messages`, read in the test's own task and kept, so that a test can wait for one message in
/// particular and then look at all that came before it.
struct MessageLog {
    private var iterator: KafkaConsumerMessages.AsyncIterator
    /// Every message read so far, in order.
    private(set) var messages: [KafkaConsumerMessage] = []

    /// Makes the consumer's one reader of `messages`.
    init(_ consumer: KafkaConsumer) { iterator = consumer.messages.makeAsyncIterator() }

    /// The values read so far from `partition`, in order.
    func values(of partition: Int) -> [String] {
        messages.filter { $0.partition == partition }.compactMap(\.valueString)
    }

    /// Reads until a message with `value` has come (returns at once if it already has).
    mutating func read(until value: String) async throws {
        while !messages.contains(where: { $0.valueString == value }) {
            guard let message = try await iterator.next() else { throw KafkaError(code: .shutDown, reason: "The messages ended before '\(value)'") }
            messages.append(message)
        }
    }

    /// Reads to the end of the messages, after the consumer was told to shut down.
    mutating func readToEnd() async throws {
        while let message = try await iterator.next() { messages.append(message) }
    }

    /// Returns once the consumer has fetched from every partition it owns and fetches (not paused) after this call
    /// began, and all that fetch found has been read into this log: with no timing, by sending three markers to
    /// `markerPartition` in turn, each once the one before it has been read. The partition must be owned, read
    /// from a position at or before the markers, and not paused.
    ///
    /// Why three: each marker is sent after the one before it arrived, so it comes with a later fetch than that one.
    /// The fetch that brings the second marker therefore looks at the partitions after the first marker was sent
    /// (after this call began): on the file queue, it is a round of the fetch thread that began after the round
    /// that brought the first marker ended, and each round reads every owned, unpaused partition; through
    /// librdkafka, it is a Fetch request the broker answered after the second marker was in its log, and one Fetch
    /// names every fetchable partition its broker leads (on the embedded cluster, of one broker, all of them; on a
    /// cluster of several, named by `KAFKA_BOOTSTRAP_SERVERS`, only those that share the marker partition's
    /// leader), with librdkafka having one Fetch in flight per broker. What one fetch brings is queued whole before
    /// what the next brings, and handed out in that order: so by the third marker, all that the second marker's
    /// fetch found has been read.
    mutating func passWholeFetch(_ producer: KafkaProducer, topic: String, markerPartition: Int) async throws {
        for _ in 0..<3 {
            let marker = uniqueName("marker")
            try await producer.send(KafkaProducerRecord(topic: topic, value: marker, partition: markerPartition))
            try await read(until: marker)
        }
    }
}
