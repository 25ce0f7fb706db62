/// Where in a partition to read from: a given offset, or a position named by what is there.
///
/// Used by ``KafkaConsumer/seek(_:to:)`` and by consumers that read given partitions
/// (``KafkaConsumerConfiguration/partitions``).
/// A struct with static members, so positions can be added without breaking anybody's `switch`.
public struct KafkaOffset: Sendable, Hashable, CustomStringConvertible {
    enum Position: Hashable {
        case beginning
        case end
        case committed
        case tail(Int64)
        case absolute(Int64)
    }

    let position: Position

    private init(_ position: Position) { self.position = position }

    /// The oldest record still in the partition.
    public static let beginning = KafkaOffset(.beginning)
    /// After the last record now in the partition: only records produced from now on.
    public static let end = KafkaOffset(.end)
    /// The consumer group's committed offset, or where ``KafkaConsumerConfiguration/autoOffsetReset`` says when
    /// there is none. Needs a group.
    public static let committed = KafkaOffset(.committed)

    /// The record with this offset (the next offset to read).
    /// - Parameter offset: A record's offset, at least 0.
    public static func offset(_ offset: Int64) -> KafkaOffset { KafkaOffset(.absolute(offset)) }

    /// The last `count` records now in the partition (all of them when it holds fewer).
    /// - Parameter count: How many records back from the end, at least 0.
    public static func tail(_ count: Int64) -> KafkaOffset { KafkaOffset(.tail(count)) }

    /// `beginning`, `end`, `committed`, `tail(n)` or the offset.
    public var description: String {
        switch position {
        case .beginning: return "beginning"
        case .end: return "end"
        case .committed: return "committed"
        case .tail(let count): return "tail(\(count))"
        case .absolute(let offset): return String(offset)
        }
    }

    /// Throws ``KafkaError/Code/invalidOffset`` for a negative offset or tail.
    func validate(for partition: KafkaTopicPartition) throws {
        switch position {
        case .absolute(let value) where value < 0, .tail(let value) where value < 0:
            throw KafkaError(code: .invalidOffset, reason: "\(self) is not an offset of \(partition): offsets and tails are never negative")
        default:
            return
        }
    }

    /// The offset in a partition whose records run from `low` (the oldest) to `high` (the next to be written).
    /// - Throws: ``KafkaError/Code/invalidOffset`` for an offset outside `low...high`.
    func resolve(low: Int64, high: Int64, in partition: KafkaTopicPartition) throws -> Int64 {
        switch position {
        case .beginning: return low
        case .end: return high
        case .tail(let count): return max(low, high - count)
        case .committed:
            throw KafkaError(code: .invalidOffset, reason: "\(partition): the committed offset is where the consumer starts, not a seek target")
        case .absolute(let offset):
            guard offset >= low, offset <= high else {
                throw KafkaError(
                    code: .invalidOffset,
                    reason: "Offset \(offset) is out of range for \(partition), which holds offsets \(low) to \(high - 1)"
                        + (low == high ? " (it is empty at \(high))" : "")
                )
            }
            return offset
        }
    }
}

/// A partition to read, and where to start: for a consumer without a group, or one that reads given partitions.
public struct KafkaPartitionStart: Sendable, Hashable, CustomStringConvertible {
    /// The topic.
    public var topic: String
    /// The partition number.
    public var partition: Int
    /// Where to start.
    public var offset: KafkaOffset

    /// A partition and where to start reading it.
    /// - Parameters:
    ///   - topic: The topic.
    ///   - partition: The partition number.
    ///   - offset: Where to start (``KafkaOffset/beginning`` by default).
    public init(topic: String, partition: Int, offset: KafkaOffset = .beginning) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// The topic and partition.
    public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }

    /// `topic[partition]@offset`.
    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}
