import Foundation

/// Turns librdkafka's statistics JSON (emitted every `statistics.interval.ms`) into gauges: the producer's queue
/// depth (`msg_cnt`) and each assigned partition's consumer lag (`topics.*.partitions.*.consumer_lag`).
enum RDStatistics {
    static let queuedMessages = "tracedkafka.producer.queued.messages"
    static let consumerLag = "tracedkafka.consumer.lag"

    static func record(_ json: Data, into metrics: KafkaClientMetrics, consumer: Bool) {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return }
        let clientID = object["client_id"] as? String
        if !consumer, let count = (object["msg_cnt"] as? NSNumber)?.doubleValue {
            metrics.gauge(queuedMessages, clientID: clientID, topic: nil, partition: nil, value: count)
        }
        guard consumer, let topics = object["topics"] as? [String: Any] else { return }
        for (topic, value) in topics {
            guard let partitions = (value as? [String: Any])?["partitions"] as? [String: Any] else { continue }
            for (id, partition) in partitions {
                // Partition -1 is librdkafka's internal "unassigned" bucket; a lag of -1 means "not known yet".
                guard let number = Int(id), number >= 0,
                    let lag = ((partition as? [String: Any])?["consumer_lag"] as? NSNumber)?.int64Value, lag >= 0
                else { continue }
                metrics.gauge(consumerLag, clientID: clientID, topic: topic, partition: number, value: Double(lag))
            }
        }
    }
}
