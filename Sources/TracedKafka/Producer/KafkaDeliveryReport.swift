import struct Foundation.Date

/// Identifies one record sent by a producer; delivery events name it.
public struct KafkaProducerMessageID: Sendable, Hashable, CustomStringConvertible {
    /// The number, unique within one producer, increasing in the order of sending.
    public let rawValue: UInt64

    /// Creates an identifier.
    /// - Parameter rawValue: The number.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The number as text.
    public var description: String { String(rawValue) }
}

/// The broker's acknowledgement of a sent record: where it was stored.
public struct KafkaDeliveryReport: Sendable, Hashable {
    /// The record's identifier within its producer.
    public var messageID: KafkaProducerMessageID
    /// The topic it was stored in.
    public var topic: String
    /// The partition it was stored in.
    public var partition: Int
    /// Its offset in the partition.
    public var offset: Int64
    /// Its timestamp, as the broker stored it: the create time the producer gave it (the record's
    /// ``KafkaProducerRecord/timestamp``, or when it was sent), or the time the broker appended it for a topic with
    /// `message.timestamp.type=LogAppendTime`. librdkafka's embedded broker (TracedKafkaTesting's default cluster) reports
    /// a log-append time of 1970-01-01T00:00:01.234Z for every record; its consumers read the create time.
    public var timestamp: Date?
    /// What ``timestamp`` means; `nil` without a timestamp.
    public var timestampType: KafkaTimestampType?

    /// Creates a delivery report.
    /// - Parameters:
    ///   - messageID: The record's identifier.
    ///   - topic: The topic.
    ///   - partition: The partition.
    ///   - offset: The offset.
    ///   - timestamp: The timestamp, if known.
    ///   - timestampType: What the timestamp means (create time when there is one and this is `nil`).
    public init(
        messageID: KafkaProducerMessageID,
        topic: String,
        partition: Int,
        offset: Int64,
        timestamp: Date?,
        timestampType: KafkaTimestampType? = nil
    ) {
        self.messageID = messageID
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.timestampType = timestamp == nil ? nil : timestampType ?? .createTime
    }
}

/// What became of a record sent with ``KafkaProducer/enqueue(_:)``, or what went wrong with the cluster.
public enum KafkaProducerEvent: Sendable {
    /// The broker acknowledged the record.
    case delivered(KafkaDeliveryReport)
    /// The record could not be delivered.
    case failed(messageID: KafkaProducerMessageID, topic: String, error: KafkaError)
    /// Something went wrong that fails no record by itself (yet): a broker unreachable or all of them down, a name
    /// that does not resolve, authentication or TLS refused (librdkafka's ``KafkaError/rdKafkaCode`` says which), or
    /// the file queue's writer failing. Records keep being retried until `message.timeout.ms`. Each kind is
    /// reported at once, then at most every 5 seconds. A fatal one (``KafkaError/isFatal``) has stopped the
    /// producer: every later call throws it.
    case error(KafkaError)
}
