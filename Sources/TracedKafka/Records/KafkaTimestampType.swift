/// What a record's timestamp means: when the producer made it, or when the broker appended it to its log (a topic
/// with `message.timestamp.type=LogAppendTime`). A struct with static members, so kinds can be added without breaking
/// anybody's `switch`.
public struct KafkaTimestampType: Sendable, Hashable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }

    /// The time the producer gave the record (its ``KafkaProducerRecord/timestamp``, or when it was sent).
    public static let createTime = KafkaTimestampType("createTime")
    /// The time the broker appended the record to the partition's log.
    public static let logAppendTime = KafkaTimestampType("logAppendTime")

    /// The kind's name.
    public var description: String { name }
}
