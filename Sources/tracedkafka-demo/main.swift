// tracedkafka-demo: a producer and a consumer in one ServiceGroup, on the embedded broker (or on the cluster named
// by KAFKA_BOOTSTRAP_SERVERS). It sends a few orders, reads them back, and shuts down gracefully.
import Foundation
import Logging
import ServiceLifecycle
import TracedKafka
import TracedKafkaTesting

@main
struct Demo {
    static func main() async throws {
        var logger = Logger(label: "tracedkafka-demo")
        logger.logLevel = .warning

        let environment = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"].flatMap { $0.isEmpty ? nil : $0 }
        let cluster = environment == nil ? try EmbeddedKafkaCluster(brokers: 1) : nil
        let bootstrap = environment ?? cluster!.bootstrapServers
        let topic = "orders-\(UInt32.random(in: 0...UInt32.max))"
        try cluster?.createTopic(topic, partitions: 3)
        print("broker: \(bootstrap)\(cluster == nil ? " (KAFKA_BOOTSTRAP_SERVERS)" : " (embedded)")")

        let servers = bootstrap.split(separator: ",").map(String.init)
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: servers, clientID: "checkout"), logger: logger)
        let consumer = try KafkaConsumer(
            configuration: .init(bootstrapServers: servers, groupID: "billing-\(topic)", topics: [topic]),
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: producer), .init(service: consumer)], logger: logger)
        )

        let orders = ["espresso", "croissant", "flat white", "bagel", "matcha"]
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }

            for (index, item) in orders.enumerated() {
                let report = try await producer.send(
                    KafkaProducerRecord(
                        topic: topic,
                        key: "customer-\(index % 2)",
                        value: #"{"order":\#(index),"item":"\#(item)"}"#,
                        headers: [KafkaHeader(key: "source", value: "demo")]
                    )
                )
                print("sent      \(report.topic)[\(report.partition)]@\(report.offset)  key=customer-\(index % 2)")
            }

            var received = 0
            for try await message in consumer.messages {
                print("received  \(message.topic)[\(message.partition)]@\(message.offset)  \(message.valueString ?? "<tombstone>")")
                received += 1
                if received == orders.count { await group.triggerGracefulShutdown() }
            }
            try await tasks.waitForAll()
        }
        print("done: \(orders.count) sent, \(orders.count) received, shut down cleanly")
        cluster?.shutdown()
    }
}
