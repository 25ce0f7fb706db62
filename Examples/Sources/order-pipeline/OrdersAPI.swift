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
        let process = try await PipelineProcess(serviceName: serviceName)
        let logger = process.logger
        let producer = try process.makeProducer()
        let endpoint = Endpoint(producer: producer, logger: logger)
        let requests = SimulatedRequests(count: orders, every: interval, logger: logger) { number in
            try await endpoint.placeOrder(number: number)
        }
        try await process.run([
            .init(service: producer),
            // With a limit, placing the last order shuts the group down gracefully: the producer delivers what is
            // queued and swift-otel exports the last spans before the process exits.
            .init(service: requests, successTerminationBehavior: .gracefullyShutdownGroup),
        ])
    }

    /// The HTTP endpoint.
    struct Endpoint: Sendable {
        /// The process's one producer.
        let producer: KafkaProducer
        /// Where the endpoint logs.
        let logger: Logger

        /// `POST /orders`: one trace per request, starting here.
        func placeOrder(number: Int) async throws {
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
