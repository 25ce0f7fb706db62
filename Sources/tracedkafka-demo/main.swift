// tracedkafka-demo: an order pipeline of four services on the embedded broker (or on KAFKA_BOOTSTRAP_SERVERS),
//
//   checkout ──orders──▶ order service ──payments──▶ payment service ──notifications──▶ notification service
//
// each consumer a ServiceLifecycle Service, all traced with a W3C recording tracer. Once every service has joined its
// group it sends one order and prints the waterfall of its single trace across the three Kafka hops: each span's
// bar on one time axis, so the time between a send and the next process shows.
import Foundation
import Logging
import ServiceLifecycle
import Tracing
import TracedKafka
import TracedKafkaTesting

@main
struct Demo {
    static func main() async throws {
        var logger = Logger(label: "tracedkafka-demo")
        logger.logLevel = .warning
        let tracer = W3CRecordingTracer()

        let cluster = try KafkaTestCluster.fromEnvironment()
        print("broker: \(cluster.bootstrapServers)\(cluster.embedded == nil ? " (KAFKA_BOOTSTRAP_SERVERS)" : " (embedded)")")
        let run = UInt32.random(in: 0...UInt32.max)
        let (orders, payments, notifications) = ("orders-\(run)", "payments-\(run)", "notifications-\(run)")
        for topic in [orders, payments, notifications] { try await cluster.createTopic(topic, partitions: 3) }

        let producer = try KafkaProducer(
            configuration: .init(bootstrapServers: cluster.bootstrapServerList, clientID: "demo", linger: .milliseconds(1)),
            logger: logger
        )
        func consumer(_ topic: String, group: String) throws -> KafkaConsumer {
            // librdkafka's mock broker answers a waiting Fetch only when fetch.wait.max.ms (500 ms by default) runs
            // out, even when records arrive meanwhile; a real broker answers at once. The waterfall shows that wait as
            // the gap between each send and the next process span, so the demo keeps it short.
            try KafkaConsumer(
                configuration: .init(
                    bootstrapServers: cluster.bootstrapServerList, groupID: "\(group)-\(run)", topics: [topic],
                    // A new group each run, joining as the first order is sent: it reads the topic from its start.
                    autoOffsetReset: .earliest,
                    properties: cluster.embedded == nil ? [:] : ["fetch.wait.max.ms": "10"]
                ),
                logger: logger
            )
        }
        let (delivered, notify) = AsyncStream.makeStream(of: String.self)
        // Each service says when its warm-up record reached it: it has joined its group, so the order's trace shows
        // the hops themselves, not the groups forming.
        let (ready, joined) = AsyncStream.makeStream(of: String.self)
        // One untraced record per topic first, so the trace shows steady-state sends rather than the first lookup
        // of a new topic's metadata. The handlers skip it.
        for topic in [orders, payments, notifications] {
            try await producer.send(KafkaProducerRecord(topic: topic, key: "warm-up", value: "warm-up"))
        }

        let services: [any Service] = [
            producer,
            try consumer(orders, group: "order-service").service { message in
                guard message.keyString != "warm-up" else { joined.yield(orders); return }
                try await withSpan("reserve stock") { _ in try await Task.sleep(for: .milliseconds(2)) }
                try await producer.send(KafkaProducerRecord(topic: payments, key: message.key, value: message.value))
            },
            try consumer(payments, group: "payment-service").service { message in
                guard message.keyString != "warm-up" else { joined.yield(payments); return }
                try await withSpan("charge card", ofKind: .client) { _ in try await Task.sleep(for: .milliseconds(3)) }
                try await producer.send(KafkaProducerRecord(topic: notifications, key: message.key, value: message.value))
            },
            try consumer(notifications, group: "notification-service").service { message in
                guard message.keyString != "warm-up" else { joined.yield(notifications); return }
                try await withSpan("send email", ofKind: .client) { _ in try await Task.sleep(for: .milliseconds(1)) }
                notify.yield(message.valueString ?? "")
            },
        ]
        let group = ServiceGroup(
            configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )

        try await withTracer(tracer) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                var waiting = Set([orders, payments, notifications])
                for await topic in ready {
                    waiting.remove(topic)
                    if waiting.isEmpty { break }
                }
                try await withSpan("checkout", ofKind: .server) { _ in
                    let report = try await producer.send(
                        KafkaProducerRecord(topic: orders, key: "customer-42", value: #"{"order":1001,"item":"espresso"}"#)
                    )
                    print("checkout: order sent to \(report.topic)[\(report.partition)]@\(report.offset)")
                }
                for await value in delivered {
                    print("notification service: handled \(value)")
                    break
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }

        guard let root = tracer.span(named: "checkout") else {
            print("no checkout span was recorded")
            exit(1)
        }
        let trace = tracer.spans(inTrace: root.traceID)
        print("\none trace, \(trace.count) spans, trace id \(root.traceID):\n")
        print(TraceWaterfall.render(trace))
        cluster.embedded?.shutdown()
    }
}
