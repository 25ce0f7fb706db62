import struct Foundation.Date
import Tracing

/// A record read from Kafka, with its position.
public struct KafkaConsumerMessage: Sendable, Hashable {
    /// The topic it was read from.
    public var topic: String
    /// The partition it was read from.
    public var partition: Int
    /// Its offset in the partition.
    public var offset: Int64
    /// The key, or `nil`.
    public var key: [UInt8]?
    /// The value, or `nil` for a tombstone.
    public var value: [UInt8]?
    /// The headers, in the order they were produced.
    public var headers: KafkaHeaders
    /// The record's timestamp, when the broker reports one.
    public var timestamp: Date?
    /// The producer's trace context extracted from the headers, when tracing and propagation are on and the
    /// headers carry a valid one. Use it to start your own spans when you read ``KafkaConsumer/messages`` directly
    /// (the handler API does it for you). Not part of equality.
    public var traceContext: InstrumentationContext?

    /// Creates a message; the consumer does this, tests may too.
    /// - Parameters:
    ///   - topic: The topic.
    ///   - partition: The partition.
    ///   - offset: The offset in the partition.
    ///   - key: The key, or `nil`.
    ///   - value: The value, or `nil` for a tombstone.
    ///   - headers: The headers.
    ///   - timestamp: The timestamp, if known.
    public init(
        topic: String,
        partition: Int,
        offset: Int64,
        key: [UInt8]?,
        value: [UInt8]?,
        headers: KafkaHeaders,
        timestamp: Date?
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    /// The key decoded as UTF-8, or `nil`.
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }
    /// The value decoded as UTF-8, or `nil`.
    public var valueString: String? { value.flatMap { String(validating: $0, as: UTF8.self) } }
    /// Whether this message is a tombstone (its value is `nil`).
    public var isTombstone: Bool { value == nil }

    /// The position to commit once this message is handled: its offset + 1.
    public var nextOffset: KafkaTopicPartitionOffset {
        KafkaTopicPartitionOffset(topic: topic, partition: partition, offset: offset + 1)
    }

    /// Whether two messages hold the same record at the same position (the extracted trace context is ignored).
    public static func == (lhs: KafkaConsumerMessage, rhs: KafkaConsumerMessage) -> Bool {
        lhs.topic == rhs.topic && lhs.partition == rhs.partition && lhs.offset == rhs.offset && lhs.key == rhs.key
            && lhs.value == rhs.value && lhs.headers == rhs.headers && lhs.timestamp == rhs.timestamp
    }

    /// Hashes the record and its position.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(topic)
        hasher.combine(partition)
        hasher.combine(offset)
        hasher.combine(key)
        hasher.combine(value)
        hasher.combine(headers)
        hasher.combine(timestamp)
    }
}
