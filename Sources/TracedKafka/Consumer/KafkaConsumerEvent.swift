/// Something that happened to a ``KafkaConsumer`` besides messages arriving: partitions assigned, revoked or lost,
/// or an error that does not stop it.
///
/// ``kind`` is a struct with static members rather than an enum, so kinds can be added without breaking a `switch`
/// (which needs a `default:`):
///
/// ```swift
/// import TracedKafka
///
/// let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: .init(
///     bootstrapServers: ["localhost:9092"], groupID: "billing", topics: ["orders"]))
/// Task { try await consumer.run { message in print(message.offset) } }   // events arrive while it runs
/// for await event in events {
///     switch event.kind {
///     case .partitionsAssigned: print("assigned", event.partitions)
///     case .partitionsLost: print("lost without a commit", event.partitions)
///     case .error: print(event.error!)
///     default: break
///     }
/// }
/// ```
public struct KafkaConsumerEvent: Sendable, CustomStringConvertible {
    /// What kind of event it is.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private let name: String

        /// The group gave this consumer ``KafkaConsumerEvent/partitions`` (or, without a group, the configured
        /// partitions were assigned at start).
        public static let partitionsAssigned = Kind(name: "partitionsAssigned")
        /// The group took ``KafkaConsumerEvent/partitions`` away in a rebalance, after the consumer committed what
        /// it had handled of them; their buffered, unhandled messages were dropped.
        public static let partitionsRevoked = Kind(name: "partitionsRevoked")
        /// ``KafkaConsumerEvent/partitions`` were taken away without the chance to commit (the consumer was
        /// thrown out of its group, for example after missing its session timeout): other members may already
        /// be reading them; what was handled and not yet committed is delivered again there.
        public static let partitionsLost = Kind(name: "partitionsLost")
        /// An error that does not stop the consumer (a broker unreachable, a commit refused…):
        /// ``KafkaConsumerEvent/error``.
        public static let error = Kind(name: "error")

        /// The kind's name, for logs.
        public var description: String { name }
    }

    /// What kind of event it is.
    public let kind: Kind
    /// The partitions assigned, revoked or lost; empty for an error.
    public let partitions: [KafkaTopicPartition]
    /// The error, for ``Kind/error``.
    public let error: KafkaError?

    private init(kind: Kind, partitions: [KafkaTopicPartition] = [], error: KafkaError? = nil) {
        self.kind = kind
        self.partitions = partitions
        self.error = error
    }

    /// Partitions given to the consumer.
    /// - Parameter partitions: The partitions.
    public static func partitionsAssigned(_ partitions: [KafkaTopicPartition]) -> KafkaConsumerEvent {
        KafkaConsumerEvent(kind: .partitionsAssigned, partitions: partitions)
    }

    /// Partitions taken away after a commit.
    /// - Parameter partitions: The partitions.
    public static func partitionsRevoked(_ partitions: [KafkaTopicPartition]) -> KafkaConsumerEvent {
        KafkaConsumerEvent(kind: .partitionsRevoked, partitions: partitions)
    }

    /// Partitions taken away without a commit.
    /// - Parameter partitions: The partitions.
    public static func partitionsLost(_ partitions: [KafkaTopicPartition]) -> KafkaConsumerEvent {
        KafkaConsumerEvent(kind: .partitionsLost, partitions: partitions)
    }

    /// An error that does not stop the consumer.
    /// - Parameter error: The error.
    public static func error(_ error: KafkaError) -> KafkaConsumerEvent {
        KafkaConsumerEvent(kind: .error, error: error)
    }

    /// `kind` with its partitions or error, for logs.
    public var description: String {
        if let error { return "\(kind): \(error)" }
        return "\(kind): \(partitions.map(\.description).joined(separator: ", "))"
    }
}
