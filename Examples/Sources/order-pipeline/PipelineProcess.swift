import ExampleSupport
import Logging
import ServiceLifecycle
import TracedKafka

/// What each of the pipeline's services sets up first, and how it runs: swift-otel with the service's own name, a
/// logger, the broker, and clients named after the service.
struct PipelineProcess: Sendable {
    /// The `service.name` this process reports; also its Kafka client id and consumer group.
    let serviceName: String
    /// swift-otel's exporters, a service of their own.
    let observability: any Service
    /// The service's logger; each line carries the current trace_id and span_id.
    let logger: Logger
    /// The broker all three services share.
    let broker: ExampleBroker

    /// Bootstraps swift-otel, finds the broker and, when it is embedded, creates the pipeline's topics.
    /// - Parameter serviceName: The service's name.
    /// - Throws: When swift-otel or the broker can't be set up.
    init(serviceName: String) async throws {
        self.serviceName = serviceName
        observability = try Observability.bootstrap(serviceName: serviceName)
        logger = Logger(label: serviceName)
        broker = try ExampleBroker.fromEnvironment()
        logger.info("kafka: \(broker)")
        if broker.isEmbedded { try await broker.createTopics(Topic.all) }
    }

    /// A producer named after the service.
    /// - Parameter transactionalID: The transactional id of a producer that sends in transactions, or `nil`.
    func makeProducer(transactionalID: String? = nil) throws -> KafkaProducer {
        try KafkaProducer(
            configuration: .init(
                bootstrapServers: broker.bootstrapServers,
                clientID: serviceName,
                transactionalID: transactionalID,
                linger: .milliseconds(5)
            ),
            logger: logger
        )
    }

    /// A consumer of `topic` in the service's own group, from the earliest record.
    /// - Parameters:
    ///   - topic: The topic to consume.
    ///   - commitMode: How it commits (`.manual` for one whose offsets a transaction commits).
    func makeConsumer(
        of topic: String,
        commitMode: KafkaConsumerConfiguration.CommitMode = .afterHandled
    ) throws -> KafkaConsumer {
        try KafkaConsumer(
            configuration: .init(
                bootstrapServers: broker.bootstrapServers,
                groupID: serviceName,
                topics: [topic],
                autoOffsetReset: .earliest,
                commitMode: commitMode,
                clientID: serviceName
            ),
            logger: logger
        )
    }

    /// Decodes a message's value, or logs it as malformed and returns `nil`: a record that can never be processed is
    /// skipped (its span still shows it), not retried forever.
    func decode<Value: Decodable>(_ type: Value.Type, from message: KafkaConsumerMessage) -> Value? {
        guard let value = Wire.decode(type, from: message.value) else {
            logger.error(
                "skipping a malformed \(type)",
                metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)"]
            )
            return nil
        }
        return value
    }

    /// Runs swift-otel and `services` in one ServiceGroup until SIGINT/SIGTERM (or until a service asks for
    /// shutdown), then stops the broker. Services shut down in reverse order, so swift-otel exports the last
    /// spans after every Kafka client has finished.
    /// - Parameter services: The service's Kafka clients and handlers, in start order.
    /// - Throws: What the services throw.
    func run(_ services: [ServiceGroupConfiguration.ServiceConfiguration]) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: observability)] + services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        broker.shutdown()
    }
}
