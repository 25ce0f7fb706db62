import struct Foundation.Date

/// A record to send to Kafka.
///
/// A `nil` value is a tombstone, which is a valid record (log compaction deletes the key).
public struct KafkaProducerRecord: Sendable, Hashable {
    /// The topic to send to. Must not be empty.
    public var topic: String
    /// The key as it was given (a `String`, `Data`, `[UInt8]` or other ``KafkaContiguousBytes``, kept without a
    /// copy), or `nil`. Records with the same key go to the same partition.
    public var keyBytes: KafkaBytes?
    /// The value as it was given (kept without a copy), or `nil` for a tombstone.
    public var valueBytes: KafkaBytes?
    /// The key's bytes as an array, or `nil`. Reading it copies a key that was not made from an array; setting it
    /// sets ``keyBytes``.
    public var key: [UInt8]? {
        get { keyBytes?.array }
        set { keyBytes.arrayView = newValue }
        _modify { yield &keyBytes.arrayView }
    }
    /// The value's bytes as an array, or `nil` for a tombstone. Reading it copies a value that was not made from an
    /// array; setting it sets ``valueBytes``.
    public var value: [UInt8]? {
        get { valueBytes?.array }
        set { valueBytes.arrayView = newValue }
        _modify { yield &valueBytes.arrayView }
    }
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
        self.keyBytes = key.map(KafkaBytes.init)
        self.valueBytes = value.map(KafkaBytes.init)
        self.headers = headers
        self.partition = partition
        self.timestamp = timestamp
    }

    /// Creates a record whose key and value are the UTF-8 bytes of strings (kept as strings, not copied).
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
        self.init(topic: topic, keyBytes: key.map(KafkaBytes.init), valueBytes: value.map(KafkaBytes.init),
                  headers: headers, partition: partition, timestamp: timestamp)
    }

    /// Creates a record from any contiguous bytes (`Data`, `[UInt8]`, `String`, your own ``KafkaContiguousBytes``),
    /// kept as they are: the producer reads them in place when it enqueues the record. (Inlinable, so that the
    /// kind of bytes is known where the record is made.) For a tombstone with such a key, give the value's type:
    /// `value: nil as Data?`, or use ``init(topic:keyBytes:valueBytes:headers:partition:timestamp:)``.
    /// - Parameters:
    ///   - topic: The topic to send to.
    ///   - key: The key, or `nil`.
    ///   - value: The value, or `nil` for a tombstone.
    ///   - headers: The headers.
    ///   - partition: An explicit partition, or `nil` for the partitioner's choice.
    ///   - timestamp: An explicit timestamp, or `nil` for the time of sending.
    @inlinable
    public init<Key: KafkaContiguousBytes, Value: KafkaContiguousBytes>(
        topic: String,
        key: Key?,
        value: Value?,
        headers: KafkaHeaders = [],
        partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.init(topic: topic, keyBytes: key.map(KafkaBytes.init), valueBytes: value.map(KafkaBytes.init),
                  headers: headers, partition: partition, timestamp: timestamp)
    }

    /// Creates a record without a key from any contiguous bytes, kept as they are.
    /// - Parameters:
    ///   - topic: The topic to send to.
    ///   - value: The value.
    ///   - headers: The headers.
    ///   - partition: An explicit partition, or `nil` for the partitioner's choice.
    ///   - timestamp: An explicit timestamp, or `nil` for the time of sending.
    @inlinable
    public init(
        topic: String,
        value: some KafkaContiguousBytes,
        headers: KafkaHeaders = [],
        partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.init(topic: topic, keyBytes: nil, valueBytes: KafkaBytes(value),
                  headers: headers, partition: partition, timestamp: timestamp)
    }

    /// Creates a record from ``KafkaBytes``.
    /// - Parameters:
    ///   - topic: The topic to send to.
    ///   - keyBytes: The key, or `nil`.
    ///   - valueBytes: The value, or `nil` for a tombstone.
    ///   - headers: The headers.
    ///   - partition: An explicit partition, or `nil` for the partitioner's choice.
    ///   - timestamp: An explicit timestamp, or `nil` for the time of sending.
    public init(
        topic: String,
        keyBytes: KafkaBytes?,
        valueBytes: KafkaBytes?,
        headers: KafkaHeaders = [],
        partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.topic = topic
        self.keyBytes = keyBytes
        self.valueBytes = valueBytes
        self.headers = headers
        self.partition = partition
        self.timestamp = timestamp
    }

    /// Whether this record is a tombstone (its value is `nil`).
    public var isTombstone: Bool { valueBytes == nil }
}

extension KafkaProducerRecord {
    /// The timestamp as Kafka keeps it, whole milliseconds since 1970 (rounded down), for both backends; `nil` when
    /// none was given or it is out of Kafka's range (negative, or past a 64-bit count).
    var timestampMilliseconds: Int64? {
        guard let timestamp, let milliseconds = Int64(exactly: (timestamp.timeIntervalSince1970 * 1000).rounded(.down)),
            milliseconds >= 0
        else { return nil }
        return milliseconds
    }
}
