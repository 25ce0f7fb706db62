import CRdKafka

extension KafkaError {
    /// A librdkafka error code (`rd_kafka_resp_err_t`): one of librdkafka's own (negative; their names begin with `_`,
    /// such as `_MSG_TIMED_OUT`) or a Kafka protocol error a broker answered with (positive, such as
    /// `UNKNOWN_TOPIC_OR_PART`).
    ///
    /// Compare with the constants below, or look up ``name`` in librdkafka's documentation:
    ///
    /// ```swift
    /// import TracedKafka
    ///
    /// func send(_ record: KafkaProducerRecord, with producer: KafkaProducer) async throws {
    ///     do {
    ///         try await producer.send(record)
    ///     } catch let error as KafkaError where error.rdKafkaCode == .messageTimedOut {
    ///         // No broker took the record within `message.timeout.ms`.
    ///     }
    /// }
    /// ```
    public struct RdKafkaCode: Hashable, Sendable, CustomStringConvertible {
        /// The `rd_kafka_resp_err_t` value.
        public let rawValue: Int32

        /// The code with this `rd_kafka_resp_err_t` value.
        /// - Parameter rawValue: The value.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        init(_ err: rd_kafka_resp_err_t) { rawValue = err.rawValue }

        /// librdkafka's symbolic name: `_MSG_TIMED_OUT`, `UNKNOWN_TOPIC_OR_PART`, ….
        public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue))) }

        /// librdkafka's text for it ("Local: Message timed out", "Broker: Unknown topic or partition", …).
        public var text: String { String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(rawValue))) }

        /// ``name``.
        public var description: String { name }

        /// Whether the condition is transient: the same call may succeed later (a broker unreachable or moving
        /// leadership, a timeout, a full queue, a rebalance under way).
        public var isRetriable: Bool { Self.retriable.contains(self) }

        // MARK: - librdkafka's own

        /// `_MSG_TIMED_OUT`: a record was not acknowledged within `message.timeout.ms`.
        public static let messageTimedOut = RdKafkaCode(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        /// `_TIMED_OUT`: an operation did not complete in time.
        public static let timedOut = RdKafkaCode(RD_KAFKA_RESP_ERR__TIMED_OUT)
        /// `_TRANSPORT`: a broker connection failed or was closed.
        public static let transport = RdKafkaCode(RD_KAFKA_RESP_ERR__TRANSPORT)
        /// `_ALL_BROKERS_DOWN`: no broker of the cluster is reachable.
        public static let allBrokersDown = RdKafkaCode(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        /// `_RESOLVE`: a broker's host name did not resolve.
        public static let resolve = RdKafkaCode(RD_KAFKA_RESP_ERR__RESOLVE)
        /// `_AUTHENTICATION`: SASL authentication failed.
        public static let authentication = RdKafkaCode(RD_KAFKA_RESP_ERR__AUTHENTICATION)
        /// `_SSL`: the TLS handshake or a certificate check failed.
        public static let ssl = RdKafkaCode(RD_KAFKA_RESP_ERR__SSL)
        /// `_QUEUE_FULL`: librdkafka's producer queue is full.
        public static let queueFull = RdKafkaCode(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        /// `_FATAL`: the client hit a fatal error and cannot go on.
        public static let fatal = RdKafkaCode(RD_KAFKA_RESP_ERR__FATAL)
        /// `_FENCED`: the producer was fenced by a newer instance with the same transactional id.
        public static let fenced = RdKafkaCode(RD_KAFKA_RESP_ERR__FENCED)
        /// `_UNKNOWN_PARTITION`: the partition does not exist (in librdkafka's metadata).
        public static let unknownPartition = RdKafkaCode(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        /// `_UNKNOWN_TOPIC`: the topic does not exist (in librdkafka's metadata).
        public static let unknownTopic = RdKafkaCode(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)

        // MARK: - Kafka protocol errors

        /// `UNKNOWN_TOPIC_OR_PART`: the broker knows no such topic or partition.
        public static let unknownTopicOrPartition = RdKafkaCode(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        /// `MSG_SIZE_TOO_LARGE`: the record is larger than the broker or topic takes.
        public static let messageSizeTooLarge = RdKafkaCode(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        /// `NOT_LEADER_FOR_PARTITION`: leadership moved; librdkafka retries on the new leader.
        public static let notLeaderForPartition = RdKafkaCode(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
        /// `LEADER_NOT_AVAILABLE`: the partition has no leader now.
        public static let leaderNotAvailable = RdKafkaCode(RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
        /// `REQUEST_TIMED_OUT`: the broker did not complete the request in time.
        public static let requestTimedOut = RdKafkaCode(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
        /// `NOT_ENOUGH_REPLICAS`: fewer in-sync replicas than `min.insync.replicas`.
        public static let notEnoughReplicas = RdKafkaCode(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
        /// `TOPIC_AUTHORIZATION_FAILED`: the principal may not use the topic.
        public static let topicAuthorizationFailed = RdKafkaCode(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        /// `GROUP_AUTHORIZATION_FAILED`: the principal may not use the consumer group.
        public static let groupAuthorizationFailed = RdKafkaCode(RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
        /// `CLUSTER_AUTHORIZATION_FAILED`: the principal may not make the call on the cluster.
        public static let clusterAuthorizationFailed = RdKafkaCode(RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED)
        /// `SASL_AUTHENTICATION_FAILED`: the broker refused the credentials.
        public static let saslAuthenticationFailed = RdKafkaCode(RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED)
        /// `OFFSET_OUT_OF_RANGE`: the offset is outside what the partition holds.
        public static let offsetOutOfRange = RdKafkaCode(RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
        /// `REBALANCE_IN_PROGRESS`: the group is rebalancing; commit again after it.
        public static let rebalanceInProgress = RdKafkaCode(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
        /// `UNKNOWN_MEMBER_ID`: the consumer is no longer a member of its group.
        public static let unknownMemberID = RdKafkaCode(RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        /// `PRODUCER_FENCED`: a newer producer with the same transactional id took over.
        public static let producerFenced = RdKafkaCode(RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
        /// `INVALID_PRODUCER_EPOCH`: the producer's epoch is stale (it was fenced).
        public static let invalidProducerEpoch = RdKafkaCode(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)

        /// Transient conditions, as Kafka marks them retriable and librdkafka retries them.
        private static let retriable: Set<RdKafkaCode> = [
            .messageTimedOut, .timedOut, .transport, .allBrokersDown, .resolve, .queueFull, .unknownPartition,
            .unknownTopic, .unknownTopicOrPartition, .notLeaderForPartition, .leaderNotAvailable, .requestTimedOut,
            .notEnoughReplicas, .rebalanceInProgress,
            RdKafkaCode(RD_KAFKA_RESP_ERR__WAIT_COORD), RdKafkaCode(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND),
            RdKafkaCode(RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION), RdKafkaCode(RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE),
            RdKafkaCode(RD_KAFKA_RESP_ERR_NOT_COORDINATOR), RdKafkaCode(RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS),
            RdKafkaCode(RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR), RdKafkaCode(RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS),
            RdKafkaCode(RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE), RdKafkaCode(RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND),
            RdKafkaCode(RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED),
        ]

        /// librdkafka's answers for a topic or partition that does not exist: ``KafkaError/Code/unknownPartition``.
        static let unknownPartitionCodes: Set<RdKafkaCode> = [.unknownTopicOrPartition, .unknownPartition, .unknownTopic]
        /// Conditions after which the client cannot go on.
        static let fatalCodes: Set<RdKafkaCode> = [.fatal, .fenced, .producerFenced, .invalidProducerEpoch]
    }
}
