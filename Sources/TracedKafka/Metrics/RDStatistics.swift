import Foundation

/// Turns librdkafka's statistics JSON (emitted every `statistics.interval.ms`) into gauges, each series naming its
/// client: the client's totals (the fields swift-kafka-client also offers), the producer's queue, and each assigned
/// partition's consumer lag (`topics.*.partitions.*.consumer_lag`).
enum RDStatistics {
    static let queuedMessages = "tracedkafka.producer.queued.messages"
    static let consumerLag = "tracedkafka.consumer.lag"

    /// A top-level field of the statistics and its gauge.
    struct Field {
        var field: String
        var label: String
        var unit: String
        /// Whether only a producer's (`true`) or only a consumer's (`false`) statistics record it; `nil`: both.
        var producer: Bool?
    }

    /// The top-level fields recorded (librdkafka's STATISTICS.md names them).
    static let fields: [Field] = [
        Field(field: "replyq", label: "tracedkafka.client.queued.operations", unit: "{operation}", producer: nil),
        Field(field: "msg_cnt", label: queuedMessages, unit: "{message}", producer: true),
        Field(field: "msg_size", label: "tracedkafka.producer.queued.size", unit: "By", producer: true),
        Field(field: "tx", label: "tracedkafka.client.requests.sent", unit: "{request}", producer: nil),
        Field(field: "tx_bytes", label: "tracedkafka.client.requests.size", unit: "By", producer: nil),
        Field(field: "rx", label: "tracedkafka.client.responses.received", unit: "{response}", producer: nil),
        Field(field: "rx_bytes", label: "tracedkafka.client.responses.size", unit: "By", producer: nil),
        Field(field: "txmsgs", label: "tracedkafka.producer.messages.sent", unit: "{message}", producer: true),
        Field(field: "txmsg_bytes", label: "tracedkafka.producer.messages.size", unit: "By", producer: true),
        Field(field: "rxmsgs", label: "tracedkafka.consumer.messages.received", unit: "{message}", producer: false),
        Field(field: "rxmsg_bytes", label: "tracedkafka.consumer.messages.size", unit: "By", producer: false),
        Field(field: "metadata_cache_cnt", label: "tracedkafka.client.metadata.topics", unit: "{topic}", producer: nil),
    ]

    static func record(_ json: Data, into metrics: KafkaClientMetrics, consumer: Bool) {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return }
        for field in fields where field.producer != consumer {
            guard let value = (object[field.field] as? NSNumber)?.doubleValue else { continue }
            metrics.gauge(field.label, unit: field.unit, topic: nil, partition: nil, value: value)
        }
        guard consumer, let topics = object["topics"] as? [String: Any] else { return }
        for (topic, value) in topics {
            guard let partitions = (value as? [String: Any])?["partitions"] as? [String: Any] else { continue }
            for (id, partition) in partitions {
                // Partition -1 is librdkafka's internal "unassigned" bucket; a lag of -1 means "not known yet".
                guard let number = Int(id), number >= 0,
                    let lag = ((partition as? [String: Any])?["consumer_lag"] as? NSNumber)?.int64Value, lag >= 0
                else { continue }
                metrics.gauge(consumerLag, unit: "{message}", topic: topic, partition: number, value: Double(lag))
            }
        }
    }
}
