/// Which backend a ``KafkaProducer`` or ``KafkaConsumer`` runs on. The API and the tracing layer are the same on both.
public enum KafkaBackend: Sendable, Hashable {
    /// A Kafka cluster through librdkafka, at the configuration's bootstrap servers. The default.
    case librdkafka
    /// The local file-backed queue in a directory: Kafka's semantics without a broker, for tests and local runs.
    /// Several processes may share the directory.
    case fileQueue(KafkaFileQueueConfiguration)

    /// The file-backed queue in `directory`, with default settings.
    /// - Parameter directory: The queue's directory; created when missing.
    /// - Returns: The backend.
    public static func fileQueue(directory: String) -> KafkaBackend {
        .fileQueue(KafkaFileQueueConfiguration(directory: directory))
    }
}
