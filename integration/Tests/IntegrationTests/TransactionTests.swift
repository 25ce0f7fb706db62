import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// Transactions against the running broker, over TCP. librdkafka's mock answers every transactional call but
/// discards the transaction's offsets and never fences; Tansu stores the offsets and fences.
@Suite("Transactions against the running broker")
struct TransactionIntegrationTests {
    var broker: String { ProcessInfo.processInfo.environment["INTEGRATION_BROKER"] ?? "mock" }

    func transactionalProducer(id: String) throws -> KafkaProducer {
        var configuration = producerConfiguration()
        configuration.transactionalID = id
        return try KafkaProducer(configuration: configuration)
    }

    @Test("Consume-transform-produce in transactions: every output committed, the group's position moves with them")
    func consumeTransformProduce() async throws {
        let input = try await Integration.topic("tx-input", partitions: 1)
        let output = try await Integration.topic("tx-output", partitions: 1)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration())) { producer in
            // Partition 0 only (on the mock an auto-created topic may get more), so order and position are one partition's.
            for index in 0..<5 { _ = try await producer.send(KafkaProducerRecord(topic: input, key: "k\(index)", value: "order \(index)", partition: 0)) }
        }
        let group = Integration.group("tx")
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(group: group, topics: [input], commitMode: .manual))
        let producer = try transactionalProducer(id: "it-\(Integration.runID)-tx-\(UUID().uuidString.prefix(8))")
        _ = try await withRunning(producer) { producer in
            try await handle(consumer, count: 5) { message in
                try await producer.withTransaction { transaction in
                    try await transaction.send(KafkaProducerRecord(topic: output, key: message.keyString, value: "invoice for \(message.valueString ?? "")", partition: 0))
                    try await transaction.sendOffsets(after: message, of: consumer)
                }
            }
        }
        let reader = try KafkaConsumer(configuration: consumerConfiguration(group: Integration.group("tx-reader"), topics: [output]))
        let invoices = try await consume(reader, count: 5)
        #expect(invoices.compactMap(\.valueString) == (0..<5).map { "invoice for order \($0)" })

        let partition = KafkaTopicPartition(topic: input, partition: 0)
        let probe = try KafkaConsumer(configuration: consumerConfiguration(group: group, topics: [input], commitMode: .manual))
        let committed = try await probe.committed([partition])
        probe.triggerGracefulShutdown()
        if broker == "tansu" {
            // The transactions' offsets are the group's committed position.
            #expect(committed == [partition: 5])
        } else {
            // librdkafka's mock answers TxnOffsetCommit without storing it.
            #expect(committed.isEmpty)
        }
    }

    @Test(
        "A second producer with the same transactional id fences the first: its next transaction is fatal, and so is its run()",
        .enabled(if: ProcessInfo.processInfo.environment["INTEGRATION_BROKER"] == "tansu", "librdkafka's mock does not fence")
    )
    func fencing() async throws {
        let topic = try await Integration.topic("tx-fenced", partitions: 1)
        let id = "it-\(Integration.runID)-fenced-\(UUID().uuidString.prefix(8))"
        let old = try transactionalProducer(id: id)
        let oldRun = Task { try await old.run() }
        try await old.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "from the old instance")) }

        let new = try transactionalProducer(id: id)
        _ = try await withRunning(new) { new in
            try await new.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "from the new instance")) }
        }
        let fenced = await #expect(throws: KafkaError.self) {
            try await old.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "fenced")) }
        }
        #expect(fenced?.code == .fatal)
        let runError = await #expect(throws: KafkaError.self) { try await withDeadline("run returns", .seconds(30)) { try await oldRun.value } }
        #expect(runError?.code == .fatal)
    }
}
