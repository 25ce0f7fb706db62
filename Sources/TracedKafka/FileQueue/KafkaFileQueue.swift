/// Tools for a local file-backed queue directory (see ``KafkaBackend/fileQueue(_:)``).
public enum KafkaFileQueue {
    /// Creates a topic with a partition count, unless it exists (racing processes agree on one count).
    /// Producers create a missing topic with ``KafkaFileQueueConfiguration/defaultPartitionCount`` partitions.
    /// - Parameters:
    ///   - topic: A Kafka topic name (letters, digits, `.`, `_`, `-`).
    ///   - partitions: The partition count, at least 1.
    ///   - directory: The queue's directory; created when missing.
    /// - Returns: The topic's partition count — `partitions`, or the existing topic's count.
    /// - Throws: ``KafkaError/Code/configuration`` for a bad name or count, ``KafkaError/Code/fileQueue`` when
    ///   the directory can't be used.
    @discardableResult
    public static func createTopic(_ topic: String, partitions: Int, in directory: String) throws -> Int {
        try KafkaTopicName.validate(topic, code: .configuration)
        try KafkaTopicName.validatePartitionCount(partitions)
        return try FQDirectory(path: directory).createTopic(topic, partitions: partitions).count
    }
}
