import CRdKafka

/// Conversions between Swift positions and librdkafka's `rd_kafka_topic_partition_list_t`.
enum RDTopicPartitionList {
    /// A new list; the caller destroys it with `rd_kafka_topic_partition_list_destroy`.
    static func make(_ offsets: [KafkaTopicPartitionOffset]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(clamping: offsets.count))!
        for position in offsets {
            rd_kafka_topic_partition_list_add(list, position.topic, Int32(clamping: position.partition))!.pointee.offset =
                position.offset
        }
        return list
    }

    /// A new list of partitions without offsets; the caller destroys it.
    static func make(_ partitions: [KafkaTopicPartition]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        make(partitions.map { KafkaTopicPartitionOffset(topic: $0.topic, partition: $0.partition, offset: rdOffsetInvalid) })
    }

    /// Runs `body` with a temporary list, destroyed afterwards.
    static func with<R>(
        _ partitions: [KafkaTopicPartition],
        _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> R
    ) rethrows -> R {
        let list = make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return try body(list)
    }

    /// The partitions in a list.
    static func partitions(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [KafkaTopicPartition] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return KafkaTopicPartition(topic: String(cString: element.topic), partition: Int(element.partition))
        }
    }

    /// The first per-partition error in a list, if any.
    static func firstError(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> KafkaError? {
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            if element.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                return KafkaError.rdKafka(
                    element.err,
                    context: "\(String(cString: element.topic))[\(element.partition)]"
                )
            }
        }
        return nil
    }
}

/// librdkafka's "no offset".
let rdOffsetInvalid: Int64 = -1001
