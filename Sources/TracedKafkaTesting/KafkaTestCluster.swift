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
            // use instead, with its default partition count: ask for its metadata, allowing that, until it is there.
            let creating = try KafkaAdminClient(configuration: KafkaAdminConfiguration(
                bootstrapServers: bootstrapServerList, properties: ["allow.auto.create.topics": "true"]
            ))
            defer { Task { await creating.close() } }
            try await autoCreateTopic(name, partitions: partitions, admin: creating)
        }
    }

    /// Asks for the topic's metadata, which makes a broker with auto-creation create it, then checks it has enough
    /// partitions.
    private func autoCreateTopic(_ name: String, partitions: Int, admin: KafkaAdminClient) async throws {
        var found = 0
        for _ in 0..<50 {
            if let description = try? await admin.describeTopic(name, timeout: .seconds(5)) {
                found = description.partitions.count
                if found > 0 { break }
            }
            try await Task.sleep(for: .milliseconds(100))
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
