import Logging

/// How a ``KafkaAdminClient`` connects.
public struct KafkaAdminConfiguration: Sendable {
    /// The brokers to bootstrap from, as `host:port` strings (for the librdkafka backend).
    public var bootstrapServers: [String]
    /// A Kafka cluster through librdkafka (the default), or the local file queue.
    public var backend: KafkaBackend
    /// The client id reported to the brokers (`client.id`), if set.
    public var clientID: String?
    /// Typed TLS and SASL settings (see ``KafkaSecurity``).
    public var security: KafkaSecurity
    /// Raw librdkafka properties, applied last.
    public var properties: [String: String]

    /// Creates a configuration.
    /// - Parameters:
    ///   - bootstrapServers: The brokers to bootstrap from (for the librdkafka backend).
    ///   - clientID: The client id, if any.
    ///   - security: TLS and SASL settings.
    ///   - backend: librdkafka (the default) or the local file queue.
    ///   - properties: Raw librdkafka properties.
    public init(
        bootstrapServers: [String] = [],
        clientID: String? = nil,
        security: KafkaSecurity = .plaintext,
        backend: KafkaBackend = .librdkafka,
        properties: [String: String] = [:]
    ) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.security = security
        self.backend = backend
        self.properties = properties
    }
}

/// A topic as the cluster describes it.
public struct KafkaTopicDescription: Sendable, Hashable {
    /// One partition of the topic.
    public struct Partition: Sendable, Hashable {
        /// The partition number.
        public var id: Int
        /// The broker that leads it, when there is one (`nil` on the file queue, or while a leader is elected).
        public var leader: Int?
        /// The brokers that hold a replica.
        public var replicas: [Int]
        /// The replicas in sync with the leader.
        public var inSyncReplicas: [Int]
    }

    /// The topic's name.
    public var name: String
    /// Its partitions, by number.
    public var partitions: [Partition]
    /// Its configuration (`retention.ms`, `cleanup.policy`, …) as the broker reports it; empty where the broker does
    /// not answer DescribeConfigs (librdkafka's mock) and on the file queue, which has none.
    public var configs: [String: String]

    /// The replicas per partition (1 on the file queue).
    public var replicationFactor: Int { partitions.first?.replicas.count ?? 0 }
}

/// The boundary under ``KafkaAdminClient``.
protocol KafkaAdminBackend: Sendable {
    func createTopic(_ name: String, partitions: Int, replicationFactor: Int?, configs: [String: String], timeout: Duration) async throws
    func deleteTopic(_ name: String, timeout: Duration) async throws
    func listTopics(timeout: Duration) async throws -> [String]
    func describeTopic(_ name: String, timeout: Duration) async throws -> KafkaTopicDescription
    func close() async
}

/// Creates, deletes, lists and describes topics, on a Kafka cluster or on the file queue — without importing
/// `TracedKafkaTesting`.
///
/// ```swift
/// import TracedKafka
///
/// let admin = try KafkaAdminClient(configuration: .init(bootstrapServers: ["localhost:9092"]))
/// do {
///     try await admin.createTopic("orders", partitions: 6, replicationFactor: 3, configs: ["retention.ms": "86400000"])
/// } catch let error as KafkaError where error.code == .topicAlreadyExists {}
/// ```
///
/// Errors a caller can act on have codes of their own: ``KafkaError/Code/topicAlreadyExists``,
/// ``KafkaError/Code/unknownPartition`` (no such topic), ``KafkaError/Code/notAuthorized``,
/// ``KafkaError/Code/timedOut``; the rest are ``KafkaError/Code/rdKafka`` with the broker's code.
public final class KafkaAdminClient: Sendable {
    private let backend: any KafkaAdminBackend

    /// Creates an admin client.
    /// - Parameters:
    ///   - configuration: How to connect.
    ///   - logger: Where the client and librdkafka log.
    /// - Throws: ``KafkaError/Code/configuration`` for bad settings or librdkafka without bootstrap servers;
    ///   ``KafkaError/Code/fileQueue`` for an unusable queue directory.
    public init(configuration: KafkaAdminConfiguration, logger: Logger = Logger(label: "TracedKafka.admin")) throws {
        let logger = logger.withClientMetadata(clientID: configuration.clientID, groupID: nil)
        switch configuration.backend.kind {
        case .librdkafka:
            try KafkaServerAddress.validateBootstrapServers(configuration.bootstrapServers)
            backend = try RDAdmin(configuration: configuration, logger: logger)
        case .fileQueue(let options):
            backend = try FQAdmin(options: options)
        }
    }

    /// Creates a topic.
    /// - Parameters:
    ///   - name: A valid Kafka topic name.
    ///   - partitions: How many partitions, at least 1.
    ///   - replicationFactor: Replicas per partition; `nil` for the broker's default (ignored by the file queue).
    ///   - configs: Topic configuration (`retention.ms`, `cleanup.policy`, …); the file queue refuses any.
    ///   - timeout: How long to wait for the cluster.
    /// - Throws: ``KafkaError/Code/topicAlreadyExists``, ``KafkaError/Code/notAuthorized``,
    ///   ``KafkaError/Code/timedOut``, ``KafkaError/Code/configuration`` for a bad name, count or setting.
    public func createTopic(
        _ name: String,
        partitions: Int,
        replicationFactor: Int? = nil,
        configs: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws {
        try KafkaTopicName.validate(name, code: .configuration)
        try KafkaTopicName.validatePartitionCount(partitions)
        if let replicationFactor, replicationFactor < 1 {
            throw KafkaError(code: .configuration, reason: "A topic needs at least one replica, not \(replicationFactor)")
        }
        try await backend.createTopic(name, partitions: partitions, replicationFactor: replicationFactor, configs: configs, timeout: timeout)
    }

    /// Deletes a topic and its records.
    /// - Parameters:
    ///   - name: The topic.
    ///   - timeout: How long to wait for the cluster.
    /// - Throws: ``KafkaError/Code/unknownPartition`` when there is no such topic, ``KafkaError/Code/notAuthorized``,
    ///   ``KafkaError/Code/timedOut``.
    public func deleteTopic(_ name: String, timeout: Duration = .seconds(30)) async throws {
        try KafkaTopicName.validate(name, code: .unknownPartition)
        try await backend.deleteTopic(name, timeout: timeout)
    }

    /// The names of the cluster's topics, sorted (Kafka's internal topics, such as `__consumer_offsets`, included).
    /// - Parameter timeout: How long to wait for the cluster.
    /// - Throws: ``KafkaError/Code/timedOut``, or librdkafka's error.
    public func listTopics(timeout: Duration = .seconds(30)) async throws -> [String] {
        try await backend.listTopics(timeout: timeout)
    }

    /// A topic's partitions, replicas and configuration.
    /// - Parameters:
    ///   - name: The topic.
    ///   - timeout: How long to wait for the cluster.
    /// - Throws: ``KafkaError/Code/unknownPartition`` when there is no such topic, ``KafkaError/Code/timedOut``.
    public func describeTopic(_ name: String, timeout: Duration = .seconds(30)) async throws -> KafkaTopicDescription {
        try KafkaTopicName.validate(name, code: .unknownPartition)
        return try await backend.describeTopic(name, timeout: timeout)
    }

    /// Frees the client's connections (also done when it is deallocated). Later calls throw
    /// ``KafkaError/Code/shutDown``.
    public func close() async {
        await backend.close()
    }
}
