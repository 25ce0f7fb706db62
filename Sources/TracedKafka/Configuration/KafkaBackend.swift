/// Which backend a ``KafkaProducer`` or ``KafkaConsumer`` runs on. The API and the tracing layer are the same on both.
/// A struct with static members, so backends can be added without breaking anybody's `switch`.
public struct KafkaBackend: Sendable, Hashable {
    enum Kind: Hashable {
        case librdkafka
        case fileQueue(KafkaFileQueueConfiguration)
    }

    let kind: Kind
    private init(_ kind: Kind) { self.kind = kind }

    /// A Kafka cluster through librdkafka, at the configuration's bootstrap servers. The default.
    public static let librdkafka = KafkaBackend(.librdkafka)

    /// The local file-backed queue in a directory: Kafka's semantics without a broker, for tests and local runs.
    /// Several processes may share the directory.
    /// - Parameter configuration: The queue's directory and settings.
    /// - Returns: The backend.
    public static func fileQueue(_ configuration: KafkaFileQueueConfiguration) -> KafkaBackend { KafkaBackend(.fileQueue(configuration)) }

    /// The file-backed queue in `directory`, with default settings.
    /// - Parameter directory: The queue's directory; created when missing.
    /// - Returns: The backend.
    public static func fileQueue(directory: String) -> KafkaBackend {
        .fileQueue(KafkaFileQueueConfiguration(directory: directory))
    }
}
