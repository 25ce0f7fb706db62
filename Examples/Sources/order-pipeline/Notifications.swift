import ExampleSupport
import Logging
import ServiceLifecycle
import TracedKafka
import Tracing

/// notifications: consumes `payments.captured` and emails a receipt through a (simulated) mail service — the end of
/// the pipeline, and of each order's trace.
enum Notifications {
    /// The `service.name` this process reports.
    static let serviceName = "notifications"

    /// Runs the service until SIGINT/SIGTERM.
    /// - Throws: What the services in its group throw.
    static func run() async throws {
        let observability = try Observability.bootstrap(serviceName: serviceName)
        let logger = Logger(label: serviceName)
        let broker = try ExampleBroker.fromEnvironment()
        logger.info("kafka: \(broker)")
        if broker.isEmbedded { try await broker.createTopics(Topic.all) }

        let consumer = try KafkaConsumer(
            configuration: .init(
                bootstrapServers: broker.bootstrapServers,
                groupID: serviceName,
                topics: [Topic.paymentsCaptured],
                autoOffsetReset: .earliest,
                clientID: serviceName
            ),
            logger: logger
        )

        let handler = consumer.service { message in
            guard let payment = Wire.decode(Payment.self, from: message.value) else {
                logger.error(
                    "skipping a malformed payment",
                    metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)"]
                )
                return
            }
            try await withSpan("send receipt email", ofKind: .client) { span in
                span.attributes["server.address"] = "smtp.example.test"
                span.attributes["order.id"] = payment.orderID
                try await Task.sleep(for: .milliseconds(Int.random(in: 5...20)))
            }
            logger.info("receipt sent", metadata: ["order": "\(payment.orderID)", "customer": "\(payment.customer)"])
        }

        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: observability), .init(service: handler)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        broker.shutdown()
    }
}
