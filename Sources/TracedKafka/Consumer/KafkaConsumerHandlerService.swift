import ServiceLifecycle

/// A consumer and its handler as one `Service`, for a `ServiceGroup`: its `run()` is
/// ``KafkaConsumer/run(_:)`` with the handler.
///
/// ```swift
/// import Logging
/// import ServiceLifecycle
/// import TracedKafka
///
/// let producer = try KafkaProducer(configuration: .init(bootstrapServers: ["localhost:9092"]))
/// let consumer = try KafkaConsumer(configuration: .init(bootstrapServers: ["localhost:9092"], groupID: "billing", topics: ["orders"]))
/// let group = ServiceGroup(configuration: .init(services: [
///     .init(service: producer),
///     .init(service: consumer.service { message in try await handle(message) }),
/// ], logger: Logger(label: "billing")))
/// try await group.run()
///
/// func handle(_ message: KafkaConsumerMessage) async throws { /* your work */ }
/// ```
public struct KafkaConsumerHandlerService: Service {
    /// The consumer.
    public let consumer: KafkaConsumer
    private let handler: nonisolated(nonsending) @Sendable (KafkaConsumerMessage) async throws -> Void

    /// Pairs a consumer with a handler.
    /// - Parameters:
    ///   - consumer: The consumer; don't run it elsewhere.
    ///   - handler: Handles one message inside its process span.
    public init(consumer: KafkaConsumer, handler: nonisolated(nonsending) @escaping @Sendable (KafkaConsumerMessage) async throws -> Void) {
        self.consumer = consumer
        self.handler = handler
    }

    /// Runs the consumer with the handler until graceful shutdown.
    /// - Throws: as ``KafkaConsumer/run(_:)``.
    public func run() async throws {
        try await consumer.run(handler)
    }
}

extension KafkaConsumer {
    /// This consumer with a handler, as a `Service` for a `ServiceGroup`.
    /// - Parameter handler: Handles one message inside its process span.
    /// - Returns: The service; run it instead of the consumer itself.
    public func service(
        handling handler: nonisolated(nonsending) @escaping @Sendable (KafkaConsumerMessage) async throws -> Void
    ) -> KafkaConsumerHandlerService {
        KafkaConsumerHandlerService(consumer: self, handler: handler)
    }
}
