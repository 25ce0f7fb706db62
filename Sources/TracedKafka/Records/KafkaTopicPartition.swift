/// A partition of a topic.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
    /// The topic's name.
    public var topic: String
    /// The partition number.
    public var partition: Int

    /// Creates a topic-partition.
    /// - Parameters:
    ///   - topic: The topic's name.
    ///   - partition: The partition number.
    public init(topic: String, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    /// `topic[partition]`.
    public var description: String { "\(topic)[\(partition)]" }
}

/// A position in a partition: the offset of the next record to read, as Kafka commits it.
public struct KafkaTopicPartitionOffset: Sendable, Hashable, CustomStringConvertible {
    /// The topic's name.
    public var topic: String
    /// The partition number.
    public var partition: Int
    /// The offset of the next record to read.
    public var offset: Int64

    /// Creates a position.
    /// - Parameters:
    ///   - topic: The topic's name.
    ///   - partition: The partition number.
    ///   - offset: The offset of the next record to read (the last handled offset + 1).
    public init(topic: String, partition: Int, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// `topic[partition]@offset`.
    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}

extension KafkaTopicPartitionOffset {
    /// Checks a position to be committed (by the consumer or with a transaction).
    /// - Throws: ``KafkaError/Code/unknownPartition`` for a topic name Kafka refuses or a partition out of range,
    ///   ``KafkaError/Code/invalidOffset`` for a negative offset.
    func validateForCommit() throws {
        try KafkaTopicName.validate(topic, code: .unknownPartition)
        guard partition >= 0, partition <= Int(Int32.max) else {
            throw KafkaError(code: .unknownPartition, reason: "Cannot commit \(topic)[\(partition)]: no such partition")
        }
        guard offset >= 0 else {
            throw KafkaError(code: .invalidOffset, reason: "Cannot commit offset \(offset) of \(topic)[\(partition)]")
        }
    }
}
