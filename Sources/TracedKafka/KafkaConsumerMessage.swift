import struct Foundation.Date

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
}
