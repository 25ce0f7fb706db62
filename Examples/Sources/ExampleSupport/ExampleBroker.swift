import TracedKafka
import TracedKafkaTesting

/// The Kafka cluster an example talks to: the one named by `KAFKA_BOOTSTRAP_SERVERS` (`host:port,host:port`) when
/// it is set, otherwise an embedded broker (librdkafka's mock cluster) started inside this process, so every example
/// runs with no setup at all.
///
/// In a real service the bootstrap servers come from its configuration and the topics already exist; this type only
/// stands in for that.
public struct ExampleBroker: Sendable, CustomStringConvertible {
    /// The cluster, from TracedKafkaTesting.
    public let cluster: KafkaTestCluster

    /// The broker named by `KAFKA_BOOTSTRAP_SERVERS`, or a new embedded one.
    /// - Throws: `KafkaError` when the embedded broker cannot start.
    public static func fromEnvironment() throws -> ExampleBroker {
        ExampleBroker(cluster: try KafkaTestCluster.fromEnvironment())
    }

    /// The brokers' addresses, for `KafkaProducerConfiguration` and `KafkaConsumerConfiguration`.
    public var bootstrapServers: [String] { cluster.bootstrapServerList }

    /// Whether the broker runs inside this process (and goes away with it).
    public var isEmbedded: Bool { cluster.embedded != nil }

    /// `host:port,…` and where it came from.
    public var description: String {
        "\(cluster.bootstrapServers) (\(isEmbedded ? "embedded in this process" : "KAFKA_BOOTSTRAP_SERVERS"))"
    }

    /// Creates the topics that don't exist yet.
    ///
    /// On a broker started by `local-kafka` this can take a few seconds per topic (its mock cluster doesn't answer
    /// CreateTopics, so the topic is created on first use instead); `local-kafka --topic NAME` creates them up front.
    /// - Parameters:
    ///   - topics: The topic names.
    ///   - partitions: Partitions of each new topic.
    /// - Throws: `KafkaError` with the broker's reason, except for a topic that already exists.
    public func createTopics(_ topics: [String], partitions: Int = 3) async throws {
        for topic in topics {
            do {
                try await cluster.createTopic(topic, partitions: partitions)
            } catch let error as KafkaError where error.rdKafkaName == "TOPIC_ALREADY_EXISTS" {
                continue
            }
        }
    }

    /// Stops the embedded broker, if there is one. Call it after every client has shut down.
    public func shutdown() {
        cluster.embedded?.shutdown()
    }
}
