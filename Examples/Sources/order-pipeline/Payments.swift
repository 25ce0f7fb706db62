import ExampleSupport
import Logging
import ServiceLifecycle
import TracedKafka
import Tracing

/// payments: consumes `orders.placed`, charges the card with a (simulated) payment provider, and publishes the
/// payment to `payments.captured` — exactly once: the payment record and the consumer's position after the order
/// are committed in one Kafka transaction, so a crash between the two can neither lose the payment nor publish it
/// twice.
///
/// The handler runs inside TracedKafka's `process orders.placed` CONSUMER span, a child of orders-api's
/// `send orders.placed`; the transaction runs in a `transaction` span inside it, which parents the send, so the
/// provider call, the transaction and the next service's processing land in the same trace.
enum Payments {
    /// The `service.name` this process reports.
    static let serviceName = "payments"

    /// Runs the service until SIGINT/SIGTERM.
    /// - Throws: What the services in its group throw; a failing handler stops the service (TracedKafka's default
    ///   `handlerFailure: .stop`), so the order is retried after a restart instead of being lost.
    static func run() async throws {
        let process = try await PipelineProcess(serviceName: serviceName)
        let logger = process.logger
        // One transactional id per instance of the service: a restarted instance fences its predecessor's
        // unfinished transaction. (Run several instances with ids of their own.)
        let producer = try process.makeProducer(transactionalID: "\(serviceName)-1")
        // The transaction commits the consumer's position, so the consumer commits nothing itself.
        let consumer = try process.makeConsumer(of: Topic.ordersPlaced, commitMode: .manual)
        let provider = PaymentProvider()

        let handler = consumer.service { message in
            guard let order = process.decode(Order.self, from: message) else { return }
            logger.info("charging card", metadata: ["order": "\(order.id)", "amount_cents": "\(order.amountCents)"])
            let reference = try await provider.charge(order)
            let payment = Payment(
                orderID: order.id,
                customer: order.customer,
                amountCents: order.amountCents,
                reference: reference
            )
            try await producer.withTransaction { transaction in
                try await transaction.send(KafkaProducerRecord(
                    topic: Topic.paymentsCaptured,
                    key: message.key,
                    value: try Wire.encode(payment)
                ))
                try await transaction.sendOffsets(after: message, of: consumer)
            }
            logger.info("payment captured", metadata: ["order": "\(order.id)", "reference": "\(reference)"])
        }

        // Reverse order at shutdown: the consumer finishes the order in hand (its send included), commits and leaves
        // the group; then the producer delivers what is queued; then swift-otel exports the last spans.
        try await process.run([.init(service: producer), .init(service: handler)])
    }

    /// The payment provider's API, simulated.
    struct PaymentProvider: Sendable {
        /// Charges an order in a CLIENT span, a child of the current span.
        /// - Parameter order: The order to charge.
        /// - Returns: The provider's reference for the charge.
        /// - Throws: `CancellationError` when the task is cancelled mid-call.
        func charge(_ order: Order) async throws -> String {
            try await withSpan("POST /v1/charges", ofKind: .client) { span in
                span.attributes["http.request.method"] = "POST"
                span.attributes["server.address"] = "payments.example-provider.test"
                span.attributes["payment.amount_cents"] = order.amountCents
                try await Task.sleep(for: .milliseconds(Int.random(in: 10...40)))
                span.attributes["http.response.status_code"] = 201
                return "ch_\(UInt32.random(in: .min ... .max))"
            }
        }
    }
}
