import CRdKafka
import Logging

/// The librdkafka admin backend: librdkafka's Admin API (CreateTopics, DeleteTopics, DescribeConfigs) and metadata
/// requests on a handle of its own; every blocking wait runs on the client's serial queue. The handle is a consumer's
/// (with no group): a producer's metadata requests ask the broker to create the topics they name, so describing a
/// topic that is not there would create it.
final class RDAdmin: KafkaAdminBackend {
    private let client: RDClient

    init(configuration: KafkaAdminConfiguration, logger: Logger) throws {
        var properties: [(String, String)] = [
            ("bootstrap.servers", configuration.bootstrapServers.joined(separator: ",")),
            ("allow.auto.create.topics", "false"),
        ]
        if let clientID = configuration.clientID { properties.append(("client.id", clientID)) }
        properties += try configuration.security.rdKafkaProperties()
        properties += configuration.properties.sorted { $0.key < $1.key }
        client = try RDClient(type: RD_KAFKA_CONSUMER, properties: properties, callbacks: RDCallbacks(logger: logger))
    }

    func createTopic(_ name: String, partitions: Int, replicationFactor: Int?, configs: [String: String], timeout: Duration) async throws {
        try await client.blocking("The admin client") { handle in
            var errstr = [CChar](repeating: 0, count: 512)
            guard let topic = rd_kafka_NewTopic_new(name, Int32(clamping: partitions), Int32(clamping: replicationFactor ?? -1), &errstr, errstr.count) else {
                throw KafkaError(code: .configuration, reason: "Cannot create topic '\(name)': \(String(rdErrorBuffer: errstr))")
            }
            defer { rd_kafka_NewTopic_destroy(topic) }
            for (key, value) in configs.sorted(by: { $0.key < $1.key }) {
                let err = rd_kafka_NewTopic_set_config(topic, key, value)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw Self.error(err, "Cannot set \(key) on topic '\(name)'") }
            }
            var topics: [OpaquePointer?] = [topic]
            try Self.runTopicOperation(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout, "Creating topic '\(name)'") { options, queue in
                rd_kafka_CreateTopics(handle, &topics, 1, options, queue)
            } results: { event, count in
                rd_kafka_event_CreateTopics_result(event).flatMap { rd_kafka_CreateTopics_result_topics($0, &count) }
            }
        }
    }

    func deleteTopic(_ name: String, timeout: Duration) async throws {
        try await client.blocking("The admin client") { handle in
            guard let topic = rd_kafka_DeleteTopic_new(name) else {
                throw KafkaError(code: .configuration, reason: "Cannot delete topic '\(name)'")
            }
            defer { rd_kafka_DeleteTopic_destroy(topic) }
            var topics: [OpaquePointer?] = [topic]
            try Self.runTopicOperation(handle, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout, "Deleting topic '\(name)'") { options, queue in
                rd_kafka_DeleteTopics(handle, &topics, 1, options, queue)
            } results: { event, count in
                rd_kafka_event_DeleteTopics_result(event).flatMap { rd_kafka_DeleteTopics_result_topics($0, &count) }
            }
        }
    }

    func listTopics(timeout: Duration) async throws -> [String] {
        try await client.blocking("The admin client") { handle in
            try Self.metadata(handle, topic: nil, timeout: timeout) { metadata in
                (0..<Int(metadata.pointee.topic_cnt)).compactMap { index in
                    let topic = metadata.pointee.topics[index]
                    return topic.err == RD_KAFKA_RESP_ERR_NO_ERROR ? String(cString: topic.topic) : nil
                }.sorted()
            }
        }
    }

    func describeTopic(_ name: String, timeout: Duration) async throws -> KafkaTopicDescription {
        try await client.blocking("The admin client") { handle in
            // The whole cluster's metadata, searched by name: a request for one topic's creates it on a broker that
            // creates topics on first use (librdkafka's mock does).
            var description = try Self.metadata(handle, topic: nil, timeout: timeout) { metadata -> KafkaTopicDescription in
                let topics = UnsafeBufferPointer(start: metadata.pointee.topics, count: Int(metadata.pointee.topic_cnt))
                guard let topic = topics.first(where: { String(cString: $0.topic) == name }) else {
                    throw KafkaError(code: .unknownPartition, reason: "No topic '\(name)'", rdKafkaCode: .unknownTopicOrPartition)
                }
                guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR, topic.partition_cnt > 0 else {
                    throw Self.error(topic.err == RD_KAFKA_RESP_ERR_NO_ERROR ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : topic.err, "No topic '\(name)'")
                }
                let partitions = (0..<Int(topic.partition_cnt)).map { index in
                    let partition = topic.partitions[index]
                    return KafkaTopicDescription.Partition(
                        id: Int(partition.id),
                        leader: partition.leader >= 0 ? Int(partition.leader) : nil,
                        replicas: (0..<Int(partition.replica_cnt)).map { Int(partition.replicas[$0]) },
                        inSyncReplicas: (0..<Int(partition.isr_cnt)).map { Int(partition.isrs[$0]) }
                    )
                }.sorted { $0.id < $1.id }
                return KafkaTopicDescription(name: name, partitions: partitions, configs: [:])
            }
            description.configs = Self.configs(handle, topic: name, timeout: timeout)
            return description
        }
    }

    /// The topic's configuration, or none when the broker does not answer DescribeConfigs (librdkafka's mock).
    private static func configs(_ handle: OpaquePointer, topic: String, timeout: Duration) -> [String: String] {
        guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) else { return [:] }
        defer { rd_kafka_ConfigResource_destroy(resource) }
        var resources: [OpaquePointer?] = [resource]
        var configs: [String: String] = [:]
        try? run(handle, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, min(timeout, .seconds(5)), "Describing topic '\(topic)'") { options, queue in
            rd_kafka_DescribeConfigs(handle, &resources, 1, options, queue)
        } result: { event in
            var count = 0
            guard let result = rd_kafka_event_DescribeConfigs_result(event),
                let described = rd_kafka_DescribeConfigs_result_resources(result, &count), count == 1,
                rd_kafka_ConfigResource_error(described[0]) == RD_KAFKA_RESP_ERR_NO_ERROR
            else { return }
            var entryCount = 0
            guard let entries = rd_kafka_ConfigResource_configs(described[0], &entryCount) else { return }
            for index in 0..<entryCount {
                guard let entry = entries[index], let key = rd_kafka_ConfigEntry_name(entry) else { continue }
                configs[String(cString: key)] = rd_kafka_ConfigEntry_value(entry).map { String(cString: $0) }
            }
        }
        return configs
    }

    /// Sends one admin request and waits for its result event (which `result` reads before it is destroyed).
    private static func run(
        _ handle: OpaquePointer,
        _ operation: rd_kafka_admin_op_t,
        _ timeout: Duration,
        _ what: String,
        send: (OpaquePointer?, OpaquePointer?) -> Void,
        result: (OpaquePointer) throws -> Void
    ) throws {
        var errstr = [CChar](repeating: 0, count: 512)
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle, operation)
        defer { rd_kafka_AdminOptions_destroy(options) }
        let milliseconds = Int32(clamping: timeout.milliseconds)
        rd_kafka_AdminOptions_set_request_timeout(options, milliseconds, &errstr, errstr.count)
        if operation != RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS {
            rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds, &errstr, errstr.count)
        }
        send(options, queue)
        guard let event = rd_kafka_queue_poll(queue, Int32(clamping: timeout.milliseconds + 5_000)) else {
            throw KafkaError(code: .timedOut, reason: "\(what) got no answer in \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw error(err, "\(what) failed: \(String(cString: rd_kafka_event_error_string(event)))")
        }
        try result(event)
    }

    /// ``run(_:_:_:_:send:result:)`` for a request about one topic, whose result is the topic's error or none.
    private static func runTopicOperation(
        _ handle: OpaquePointer,
        _ operation: rd_kafka_admin_op_t,
        _ timeout: Duration,
        _ what: String,
        send: (OpaquePointer?, OpaquePointer?) -> Void,
        results: (OpaquePointer, inout Int) -> UnsafeMutablePointer<OpaquePointer?>?
    ) throws {
        try run(handle, operation, timeout, what, send: send) { event in
            var count = 0
            guard let topics = results(event, &count), count == 1 else { return }
            let err = rd_kafka_topic_result_error(topics[0])
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                let message = rd_kafka_topic_result_error_string(topics[0]).map { String(cString: $0) } ?? ""
                throw error(err, message.isEmpty ? "\(what) failed" : "\(what) failed: \(message)")
            }
        }
    }

    private static func metadata<R>(
        _ handle: OpaquePointer,
        topic name: String?,
        timeout: Duration,
        _ read: (UnsafePointer<rd_kafka_metadata_t>) throws -> R
    ) throws -> R {
        var metadata: UnsafePointer<rd_kafka_metadata_t>?
        let topic = name.flatMap { rd_kafka_topic_new(handle, $0, nil) }
        defer { if let topic { rd_kafka_topic_destroy(topic) } }
        let err = rd_kafka_metadata(handle, topic == nil ? 1 : 0, topic, &metadata, Int32(clamping: timeout.milliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw error(err, "Reading the cluster's metadata failed") }
        defer { rd_kafka_metadata_destroy(metadata) }
        return try read(metadata)
    }

    /// An error with a code a caller can act on where there is one.
    static func error(_ err: rd_kafka_resp_err_t, _ what: String) -> KafkaError {
        let code: KafkaError.Code
        switch err {
        case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: code = .topicAlreadyExists
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC: code = .unknownPartition
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED: code = .notAuthorized
        case RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: code = .timedOut
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, RD_KAFKA_RESP_ERR_INVALID_PARTITIONS,
            RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR, RD_KAFKA_RESP_ERR_INVALID_CONFIG:
            code = .configuration
        default: code = .rdKafka
        }
        return KafkaError(code: code, reason: "\(what) (\(String(cString: rd_kafka_err2str(err))))", rdKafkaCode: KafkaError.RdKafkaCode(err))
    }

    func close() async {
        await client.close { _ in }
    }
}
