/// Something that happened to a ``KafkaConsumer`` besides messages arriving.
public enum KafkaConsumerEvent: Sendable {
    /// The group gave this consumer these partitions.
    case partitionsAssigned([KafkaTopicPartition])
    /// The group took these partitions away; their buffered, unhandled messages were dropped.
    case partitionsRevoked([KafkaTopicPartition])
    /// librdkafka reported an error that does not stop the consumer (a broker unreachable, an unknown topic…).
    case error(KafkaError)
}
