import CRdKafka
import Foundation
import TracedKafka

/// The cluster a test suite runs against: the one named by the `KAFKA_BOOTSTRAP_SERVERS` environment variable, or,
/// when it is unset, an ``EmbeddedKafkaCluster`` started for the purpose.
///
/// Topics are created through the mock cluster's API on the embedded broker, and with `KafkaAdminClient` (Kafka's
/// CreateTopics request) on a real cluster, so the same test runs on both.
public final class KafkaTestCluster: Sendable {
    /// The brokers' addresses.
    public let bootstrapServerList: [String]
    /// The embedded cluster, when no real one was named; fault injection is only possible there.
    public let embedded: EmbeddedKafkaCluster?

    /// The cluster named by `KAFKA_BOOTSTRAP_SERVERS`, or a new embedded one with `brokers` brokers.
    /// - Parameter brokers: Brokers of the embedded cluster, if one is started.
    /// - Throws: `KafkaError` when the embedded cluster cannot start.
    public static func fromEnvironment(brokers: Int = 1) throws -> KafkaTestCluster {
        let named = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] ?? ""
        if !named.isEmpty {
            return KafkaTestCluster(bootstrapServerList: named.split(separator: ",").map(String.init), embedded: nil)
        }
        let cluster = try EmbeddedKafkaCluster(brokers: brokers)
        return KafkaTestCluster(bootstrapServerList: cluster.bootstrapServerList, embedded: cluster)
    }

    private init(bootstrapServerList: [String], embedded: EmbeddedKafkaCluster?) {
        self.bootstrapServerList = bootstrapServerList
        self.embedded = embedded
    }

    /// The brokers' addresses, `host:port,host:port`.
    public var bootstrapServers: String { bootstrapServerList.joined(separator: ",") }

    /// Creates a topic and waits until the cluster has it.
    /// - Parameters:
    ///   - name: The topic's name.
    ///   - partitions: How many partitions.
    /// - Throws: `KafkaError` with the broker's reason when the topic cannot be created.
    public func createTopic(_ name: String, partitions: Int = 1) async throws {
        if let embedded { return try embedded.createTopic(name, partitions: partitions) }
        let admin = try KafkaAdminClient(configuration: KafkaAdminConfiguration(bootstrapServers: bootstrapServerList))
        defer { Task { await admin.close() } }
        do {
            try await admin.createTopic(name, partitions: partitions, timeout: .seconds(10))
        } catch let error as KafkaError where error.code == .timedOut {
            // librdkafka's mock cluster (behind local-kafka) never answers CreateTopics; it creates a topic on first
            // use instead, with its default partition count: a metadata request that names the topic creates it.
            try await autoCreateTopic(name, partitions: partitions)
        }
    }

    /// Asks for the topic's metadata with a raw librdkafka client (`KafkaAdminClient.describeTopic` never creates a
    /// topic), which makes a broker with auto-creation create it, then checks it has enough partitions.
    private func autoCreateTopic(_ name: String, partitions: Int) async throws {
        let found = try await Task.detached { [bootstrapServers] in
            try Self.metadataPartitionCount(name, bootstrapServers: bootstrapServers)
        }.value
        guard found >= partitions else {
            throw KafkaError(
                code: .rdKafka,
                reason: "Topic '\(name)' was created on first use with \(found) partitions, fewer than the \(partitions) "
                    + "asked for; create it beforehand (local-kafka --topic \(name) --partitions \(partitions))"
            )
        }
    }

    /// The partition count in the metadata of `name`, asked for until the broker has it (up to ~5 s); blocking.
    private static func metadataPartitionCount(_ name: String, bootstrapServers: String) throws -> Int {
        let conf = rd_kafka_conf_new()
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in [("bootstrap.servers", bootstrapServers), ("allow.auto.create.topics", "true"), ("log_level", "3")] {
            _ = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
        }
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            throw KafkaError(code: .configuration, reason: "Could not make a client to create topic '\(name)'")
        }
        defer { rd_kafka_destroy(handle) }
        let topic = rd_kafka_topic_new(handle, name, nil)
        defer { rd_kafka_topic_destroy(topic) }
        for _ in 0..<50 {
            var metadata: UnsafePointer<rd_kafka_metadata>?
            if rd_kafka_metadata(handle, 0, topic, &metadata, 5_000) == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata {
                defer { rd_kafka_metadata_destroy(metadata) }
                if metadata.pointee.topic_cnt == 1, metadata.pointee.topics[0].partition_cnt > 0 {
                    return Int(metadata.pointee.topics[0].partition_cnt)
                }
            }
            usleep(100_000)
        }
        return 0
    }
}
