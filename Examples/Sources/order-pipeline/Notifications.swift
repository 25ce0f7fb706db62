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
        let process = try await PipelineProcess(serviceName: serviceName)
        let logger = process.logger
        let consumer = try process.makeConsumer(of: Topic.paymentsCaptured)

        let handler = consumer.service { message in
            guard let payment = process.decode(Payment.self, from: message) else { return }
            try await withSpan("send receipt email", ofKind: .client) { span in
                span.attributes["server.address"] = "smtp.example.test"
                span.attributes["order.id"] = payment.orderID
                try await Task.sleep(for: .milliseconds(Int.random(in: 5...20)))
            }
            logger.info("receipt sent", metadata: ["order": "\(payment.orderID)", "customer": "\(payment.customer)"])
        }

        try await process.run([.init(service: handler)])
    }
}
