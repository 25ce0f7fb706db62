import struct Foundation.Date

/// A record to send to Kafka.
///
/// A `nil` value is a tombstone, which is a valid record (log compaction deletes the key).
public struct KafkaProducerRecord: Sendable, Hashable {
    /// The topic to send to. Must not be empty.
    public var topic: String
    /// The key, or `nil`. Records with the same key go to the same partition.
    public var key: [UInt8]?
    /// The value, or `nil` for a tombstone.
    public var value: [UInt8]?
    /// The headers, in order; a key may repeat and a value may be `nil`.
    public var headers: KafkaHeaders
    /// The partition to send to, or `nil` to let the partitioner choose from the key.
    public var partition: Int?
    /// The record's timestamp, or `nil` to let the client stamp it when it is sent.
    public var timestamp: Date?

    /// Creates a record from bytes.
    /// - Parameters:
    ///   - topic: The topic to send to.
    ///   - key: The key, or `nil`.
    ///   - value: The value, or `nil` for a tombstone.
    ///   - headers: The headers.
    ///   - partition: An explicit partition, or `nil` for the partitioner's choice.
    ///   - timestamp: An explicit timestamp, or `nil` for the time of sending.
    public init(
        topic: String,
        key: [UInt8]? = nil,
        value: [UInt8]?,
        headers: KafkaHeaders = [],
        partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.timestamp = timestamp
    }

    /// Creates a record whose key and value are the UTF-8 bytes of strings.
    /// - Parameters:
    ///   - topic: The topic to send to.
    ///   - key: The key, or `nil`.
    ///   - value: The value, or `nil` for a tombstone.
    ///   - headers: The headers.
    ///   - partition: An explicit partition, or `nil` for the partitioner's choice.
    ///   - timestamp: An explicit timestamp, or `nil` for the time of sending.
    public init(
        topic: String,
        key: String? = nil,
        value: String?,
        headers: KafkaHeaders = [],
        partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.init(
            topic: topic,
            key: key.map { Array($0.utf8) },
            value: value.map { Array($0.utf8) },
            headers: headers,
            partition: partition,
            timestamp: timestamp
        )
    }

    /// Whether this record is a tombstone (its value is `nil`).
    public var isTombstone: Bool { value == nil }
}
