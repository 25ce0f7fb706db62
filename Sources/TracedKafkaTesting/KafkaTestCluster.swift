import CRdKafka
import Dispatch
import Foundation
import TracedKafka

/// The cluster a test suite runs against: the one named by the `KAFKA_BOOTSTRAP_SERVERS` environment variable, or,
/// when it is unset, an ``EmbeddedKafkaCluster`` started for the purpose.
///
/// Topics are created through the mock cluster's API on the embedded broker, and through Kafka's CreateTopics admin
/// request on a real cluster, so the same test runs on both.
public final class KafkaTestCluster: Sendable {
    /// The brokers' addresses.
    public let bootstrapServerList: [String]
    /// The embedded cluster, when no real one was named; fault injection is only possible there.
    public let embedded: EmbeddedKafkaCluster?

    /// The cluster named by `KAFKA_BOOTSTRAP_SERVERS`, or a new embedded one with `brokers` brokers.
    /// - Parameter brokers: Brokers of the embedded cluster, if one is started.
    /// - Throws: ``KafkaError`` when the embedded cluster cannot start.
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
    /// - Throws: ``KafkaError`` with the broker's reason when the topic cannot be created.
    public func createTopic(_ name: String, partitions: Int = 1) async throws {
        if let embedded { return try embedded.createTopic(name, partitions: partitions) }
        let servers = bootstrapServers
        // The admin call blocks: run it off the cooperative pool.
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Self.createTopicBlocking(name, partitions: partitions, servers: servers) })
            }
        }
    }

    private static func createTopicBlocking(_ name: String, partitions: Int, servers: String) throws {
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        rd_kafka_conf_set(conf, "bootstrap.servers", servers, &errstr, errstr.count)
        guard let client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, reason: "Could not create an admin client for \(servers)")
        }
        defer { rd_kafka_destroy(client) }
        let queue = rd_kafka_queue_new(client)
        defer { rd_kafka_queue_destroy(queue) }
        // Replication factor -1: the broker's default.
        guard let topic = rd_kafka_NewTopic_new(name, Int32(clamping: partitions), -1, &errstr, errstr.count) else {
            throw KafkaError(code: .configuration, reason: "Invalid topic '\(name)'")
        }
        defer { rd_kafka_NewTopic_destroy(topic) }
        let options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_operation_timeout(options, 30_000, &errstr, errstr.count)
        rd_kafka_AdminOptions_set_request_timeout(options, 5_000, &errstr, errstr.count)
        var topics: [OpaquePointer?] = [topic]
        rd_kafka_CreateTopics(client, &topics, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, 60_000) else {
            throw KafkaError(code: .timedOut, reason: "Creating topic '\(name)' got no answer in 60 s")
        }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR__TIMED_OUT {
            // librdkafka's mock cluster (behind local-kafka) never answers CreateTopics; it creates topics on first
            // use instead, with its default partition count.
            return try autoCreateTopic(name, partitions: partitions, client: client)
        }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: .rdKafka, reason: String(cString: rd_kafka_event_error_string(event)), rdKafkaCode: rd_kafka_event_error(event).rawValue)
        }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
            let results = rd_kafka_CreateTopics_result_topics(result, &count), count == 1
        else { return }
        let err = rd_kafka_topic_result_error(results[0])
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let message = rd_kafka_topic_result_error_string(results[0]).map { String(cString: $0) } ?? ""
            throw KafkaError(code: .rdKafka, reason: "Could not create topic '\(name)': \(message)", rdKafkaCode: err.rawValue)
        }
    }

    /// Asks for the topic's metadata, which makes a broker with auto-creation create it, then checks it has enough
    /// partitions.
    private static func autoCreateTopic(_ name: String, partitions: Int, client: OpaquePointer) throws {
        guard let topic = rd_kafka_topic_new(client, name, nil) else {
            throw KafkaError(code: .configuration, reason: "Invalid topic '\(name)'")
        }
        defer { rd_kafka_topic_destroy(topic) }
        var found = 0
        for _ in 0..<50 {
            var metadata: UnsafePointer<rd_kafka_metadata_t>?
            if rd_kafka_metadata(client, 0, topic, &metadata, 5_000) == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata {
                defer { rd_kafka_metadata_destroy(metadata) }
                if metadata.pointee.topic_cnt == 1, metadata.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    found = Int(metadata.pointee.topics[0].partition_cnt)
                    if found > 0 { break }
                }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard found >= partitions else {
            throw KafkaError(
                code: .rdKafka,
                reason: "Topic '\(name)' was created on first use with \(found) partitions, fewer than the \(partitions) "
                    + "asked for; create it beforehand (local-kafka --topic \(name) --partitions \(partitions))"
            )
        }
    }
}
