import CRdKafka
import Foundation
import Synchronization
import TracedKafka

/// A Kafka cluster inside this process, for tests: librdkafka's mock cluster, which speaks the real Kafka wire
/// protocol on 127.0.0.1, so any Kafka client (this library, kcat, another language) can connect to it.
///
/// It can also inject faults: take a broker down and up again, or make the next requests of a kind fail.
/// It lives until ``shutdown()`` or until it is released.
///
/// ```swift
/// import TracedKafka
/// import TracedKafkaTesting
///
/// let cluster = try EmbeddedKafkaCluster(brokers: 3)
/// try cluster.createTopic("orders", partitions: 6)
/// let producer = try KafkaProducer(configuration: .init(bootstrapServers: cluster.bootstrapServerList))
/// ```
public final class EmbeddedKafkaCluster: Sendable {
    private struct Handles: @unchecked Sendable {
        let client: OpaquePointer
        let cluster: OpaquePointer
    }

    /// The brokers' addresses, `host:port,host:port`.
    public let bootstrapServers: String
    /// How many brokers the cluster has; their ids are `1...brokerCount`.
    public let brokerCount: Int
    private let handles: Mutex<Handles?>

    /// Starts a cluster.
    /// - Parameter brokers: How many brokers, 1 or more.
    /// - Throws: `KafkaError` when librdkafka cannot start the cluster.
    public init(brokers: Int = 1) throws {
        guard brokers >= 1 else {
            throw KafkaError(code: .configuration, reason: "An embedded cluster needs at least one broker, not \(brokers)")
        }
        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        // The mock cluster needs a client handle to run on; this one never connects anywhere, and stays quiet.
        rd_kafka_conf_set_log_cb(conf) { _, _, _, _ in }
        guard let client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, reason: String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        guard let cluster = rd_kafka_mock_cluster_new(client, Int32(clamping: brokers)) else {
            rd_kafka_destroy(client)
            throw KafkaError(code: .rdKafka, reason: "librdkafka could not start a mock cluster of \(brokers) brokers")
        }
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.brokerCount = brokers
        self.handles = Mutex(Handles(client: client, cluster: cluster))
    }

    deinit { shutdown() }

    /// The brokers' addresses as a list, for `KafkaProducerConfiguration/bootstrapServers`.
    public var bootstrapServerList: [String] { bootstrapServers.split(separator: ",").map(String.init) }

    /// Stops every broker and frees the cluster. Clients still connected see their connections fail.
    public func shutdown() {
        guard let handles = handles.withLock({ handles in defer { handles = nil }; return handles }) else { return }
        // The cluster runs on its client handle: destroy the cluster first.
        rd_kafka_mock_cluster_destroy(handles.cluster)
        rd_kafka_destroy(handles.client)
    }

    /// Creates a topic.
    /// - Parameters:
    ///   - name: The topic's name.
    ///   - partitions: How many partitions.
    ///   - replicationFactor: How many brokers hold each partition (at most ``brokerCount``).
    /// - Throws: `KafkaError` when the cluster refuses (for example, the topic exists) or is shut down.
    public func createTopic(_ name: String, partitions: Int = 1, replicationFactor: Int = 1) throws {
        try call("create topic '\(name)'") {
            rd_kafka_mock_topic_create($0, name, Int32(clamping: partitions), Int32(clamping: replicationFactor))
        }
    }

    /// Takes a broker down: its connections close and it accepts none until ``setBrokerUp(_:)``.
    ///
    /// librdkafka 2.0.2's mock broker closes its listening socket and binds the same port again at once; if another
    /// socket of the process took that port in between, librdkafka aborts the process (an assertion in
    /// `rdkafka_mock.c`). Rare, but likelier with many connections opening in parallel: run fault tests that take
    /// brokers down one at a time (the integration suite does), and use ``setRoundTripTime(_:_:)`` for a slow broker in
    /// tests that run in parallel.
    /// - Parameter brokerID: The broker's id, `1...brokerCount`.
    /// - Throws: `KafkaError` for an unknown broker, or when the cluster is shut down.
    public func setBrokerDown(_ brokerID: Int) throws {
        try call("take broker \(brokerID) down") { rd_kafka_mock_broker_set_down($0, Int32(clamping: brokerID)) }
    }

    /// Delays every response of a broker by `delay` (zero restores it): a slow or unreachable broker without closing
    /// any socket, so, unlike ``setBrokerDown(_:)``, it is safe while other tests open connections in parallel.
    /// - Parameters:
    ///   - brokerID: The broker's id, `1...brokerCount`.
    ///   - delay: The extra round-trip time.
    /// - Throws: `KafkaError` for an unknown broker, or when the cluster is shut down.
    public func setRoundTripTime(_ brokerID: Int, _ delay: Duration) throws {
        try call("set broker \(brokerID)'s round-trip time") {
            rd_kafka_mock_broker_set_rtt($0, Int32(clamping: brokerID), Int32(clamping: delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000))
        }
    }

    /// Brings a broker back up.
    /// - Parameter brokerID: The broker's id, `1...brokerCount`.
    /// - Throws: `KafkaError` for an unknown broker, or when the cluster is shut down.
    public func setBrokerUp(_ brokerID: Int) throws {
        try call("bring broker \(brokerID) up") { rd_kafka_mock_broker_set_up($0, Int32(clamping: brokerID)) }
    }

    /// Makes the next requests of one kind fail, one error per request, in order, on whichever broker gets them.
    /// - Parameters:
    ///   - apiKey: The kind of request.
    ///   - errors: Kafka protocol error codes, one per request.
    /// - Throws: `KafkaError/Code/shutDown` when the cluster is shut down.
    public func pushRequestErrors(_ apiKey: KafkaAPIKey, _ errors: [KafkaProtocolError]) throws {
        try withCluster { cluster in
            var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) }
            rd_kafka_mock_push_request_errors_array(cluster, apiKey.rawValue, codes.count, &codes)
        }
    }

    private func call(_ what: String, _ body: (OpaquePointer) -> rd_kafka_resp_err_t) throws {
        let err = try withCluster(body)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code: .rdKafka, reason: "Could not \(what): \(String(cString: rd_kafka_err2str(err)))", rdKafkaCode: KafkaError.RdKafkaCode(rawValue: err.rawValue))
        }
    }

    private func withCluster<R>(_ body: (OpaquePointer) -> R) throws -> R {
        try handles.withLock { handles in
            guard let handles else { throw KafkaError(code: .shutDown, reason: "The embedded cluster has been shut down") }
            return body(handles.cluster)
        }
    }
}

/// A Kafka request type (API key), for ``EmbeddedKafkaCluster/pushRequestErrors(_:_:)``.
public struct KafkaAPIKey: Sendable, Hashable {
    /// The protocol's number for the request type.
    public let rawValue: Int16

    /// Creates an API key from the protocol's number.
    /// - Parameter rawValue: The number.
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// Produce (0).
    public static let produce = KafkaAPIKey(rawValue: 0)
    /// Fetch (1).
    public static let fetch = KafkaAPIKey(rawValue: 1)
    /// ListOffsets (2).
    public static let listOffsets = KafkaAPIKey(rawValue: 2)
    /// Metadata (3).
    public static let metadata = KafkaAPIKey(rawValue: 3)
    /// OffsetCommit (8).
    public static let offsetCommit = KafkaAPIKey(rawValue: 8)
    /// OffsetFetch (9).
    public static let offsetFetch = KafkaAPIKey(rawValue: 9)
    /// FindCoordinator (10).
    public static let findCoordinator = KafkaAPIKey(rawValue: 10)
    /// JoinGroup (11).
    public static let joinGroup = KafkaAPIKey(rawValue: 11)
    /// Heartbeat (12).
    public static let heartbeat = KafkaAPIKey(rawValue: 12)
    /// SyncGroup (14).
    public static let syncGroup = KafkaAPIKey(rawValue: 14)
    /// InitProducerId (22).
    public static let initProducerID = KafkaAPIKey(rawValue: 22)
    /// AddPartitionsToTxn (24): a transaction's first record for a partition.
    public static let addPartitionsToTxn = KafkaAPIKey(rawValue: 24)
    /// AddOffsetsToTxn (25): a transaction's consumer offsets, announced to the transaction coordinator.
    public static let addOffsetsToTxn = KafkaAPIKey(rawValue: 25)
    /// EndTxn (26): a transaction's commit or abort.
    public static let endTxn = KafkaAPIKey(rawValue: 26)
    /// TxnOffsetCommit (28): a transaction's consumer offsets, sent to the group coordinator.
    public static let txnOffsetCommit = KafkaAPIKey(rawValue: 28)
}

/// A Kafka protocol error code a broker can answer with, for ``EmbeddedKafkaCluster/pushRequestErrors(_:_:)``.
public struct KafkaProtocolError: Sendable, Hashable {
    /// The protocol's number for the error.
    public let rawValue: Int32

    /// Creates an error from the protocol's number.
    /// - Parameter rawValue: The number.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// NOT_LEADER_OR_FOLLOWER (6), retriable.
    public static let notLeaderForPartition = KafkaProtocolError(rawValue: 6)
    /// REQUEST_TIMED_OUT (7), retriable.
    public static let requestTimedOut = KafkaProtocolError(rawValue: 7)
    /// COORDINATOR_NOT_AVAILABLE (15), retriable.
    public static let coordinatorNotAvailable = KafkaProtocolError(rawValue: 15)
    /// NOT_COORDINATOR (16), retriable.
    public static let notCoordinator = KafkaProtocolError(rawValue: 16)
    /// NOT_ENOUGH_REPLICAS (19), retriable.
    public static let notEnoughReplicas = KafkaProtocolError(rawValue: 19)
    /// TOPIC_AUTHORIZATION_FAILED (29), not retriable.
    public static let topicAuthorizationFailed = KafkaProtocolError(rawValue: 29)
    /// UNKNOWN_SERVER_ERROR (-1), not retriable.
    public static let unknownServerError = KafkaProtocolError(rawValue: -1)
    /// ILLEGAL_GENERATION (22): a group member's generation is stale.
    public static let illegalGeneration = KafkaProtocolError(rawValue: 22)
    /// UNKNOWN_MEMBER_ID (25): the group does not know the member (it was thrown out; its assignment is lost).
    public static let unknownMemberID = KafkaProtocolError(rawValue: 25)
    /// REBALANCE_IN_PROGRESS (27): the group is rebalancing.
    public static let rebalanceInProgress = KafkaProtocolError(rawValue: 27)
    /// CONCURRENT_TRANSACTIONS (51), retriable: the coordinator is still ending the previous transaction.
    public static let concurrentTransactions = KafkaProtocolError(rawValue: 51)
    /// PRODUCER_FENCED (90): a newer producer with the same transactional id exists; fatal for a transactional producer.
    public static let producerFenced = KafkaProtocolError(rawValue: 90)
}
