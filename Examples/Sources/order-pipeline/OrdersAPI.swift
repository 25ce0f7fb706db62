import ExampleSupport
import Logging
import ServiceLifecycle
import TracedKafka
import Tracing

/// orders-api: takes orders over HTTP (simulated: one `POST /orders` every `interval`) and publishes each to
/// `orders.placed` inside the request's SERVER span.
enum OrdersAPI {
    /// The `service.name` this process reports.
    static let serviceName = "orders-api"

    /// Runs the service until SIGINT/SIGTERM, or until `orders` orders are placed.
    /// - Parameters:
    ///   - orders: Orders to place before shutting down; `nil` for no limit.
    ///   - interval: Time between orders.
    /// - Throws: What the services in its group throw.
    static func run(orders: Int?, interval: Duration) async throws {
        let observability = try Observability.bootstrap(serviceName: serviceName)
        let logger = Logger(label: serviceName)
        let broker = try ExampleBroker.fromEnvironment()
        logger.info("kafka: \(broker)")
        if broker.isEmbedded { try await broker.createTopics(Topic.all) }

        let producer = try KafkaProducer(
            configuration: .init(bootstrapServers: broker.bootstrapServers, clientID: serviceName, linger: .milliseconds(5)),
            logger: logger
        )
        let endpoint = Endpoint(producer: producer, orders: orders, interval: interval, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: observability),
                    .init(service: producer),
                    // With a limit, placing the last order shuts the group down gracefully: the producer delivers
                    // what is queued and swift-otel exports the last spans before the process exits.
                    .init(service: endpoint, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        broker.shutdown()
    }

    /// The HTTP endpoint, simulated.
    struct Endpoint: Service {
        /// The process's one producer.
        let producer: KafkaProducer
        /// Orders to place; `nil` for no limit.
        let orders: Int?
        /// Time between orders.
        let interval: Duration
        /// Where the endpoint logs.
        let logger: Logger

        /// Places orders until the limit is reached or graceful shutdown starts.
        /// - Throws: A failed send; the service group then shuts the process down.
        func run() async throws {
            var placed = 0
            while placed < orders ?? .max, await pause(interval) {
                placed += 1
                try await placeOrder(number: placed)
            }
            logger.info("placed \(placed) orders")
        }

        /// `POST /orders`: one trace per request, starting here.
        private func placeOrder(number: Int) async throws {
            let order = Order(
                id: "order-\(number)",
                customer: "customer-\(Int.random(in: 1...20))",
                item: ["espresso", "flat white", "cortado"].randomElement()!,
                amountCents: Int.random(in: 250...650)
            )
            try await withSpan("POST /orders", ofKind: .server) { span in
                span.attributes["http.request.method"] = "POST"
                span.attributes["http.route"] = "/orders"
                logger.info("order placed", metadata: ["order": "\(order.id)", "customer": "\(order.customer)"])
                try await producer.send(KafkaProducerRecord(
                    topic: Topic.ordersPlaced,
                    key: Array(order.customer.utf8),
                    value: try Wire.encode(order)
                ))
                span.attributes["http.response.status_code"] = 202
            }
        }
    }
}
