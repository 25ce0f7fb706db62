import Foundation
import TracedKafka
import TracedKafkaTesting

// The shared cluster, unique names and the two backends are TracedKafkaTesting's (`KafkaTestCluster.shared`,
// `uniqueName(_:)`, `KafkaTestBackend`, `KafkaConsumerConfiguration.forTests`), as in TracedKafkaTests; what is here is only what these round trips need.

typealias TestBackend = KafkaTestBackend

extension KafkaTestBackend {
    func producerConfiguration() -> KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(
            bootstrapServers: KafkaTestCluster.shared.bootstrapServerList, linger: .milliseconds(1)
        )
        configuration.backend = backend
        return configuration
    }

    /// A new group reading `topic` from its start, with quick group joins on the embedded broker.
    func consumerConfiguration(topic: String) -> KafkaConsumerConfiguration {
        var configuration = KafkaConsumerConfiguration.forTests(
            bootstrapServers: KafkaTestCluster.shared.bootstrapServerList, group: uniqueName("g"), topics: [topic]
        )
        configuration.backend = backend
        return configuration
    }

    /// Sends `records` one after another, then reads them back in a new group.
    func roundTrip(_ records: [KafkaProducerRecord]) async throws -> [KafkaConsumerMessage] {
        try await withRunning(try KafkaProducer(configuration: producerConfiguration())) { producer in
            for record in records { _ = try await producer.send(record) }
        }
        return try await handle(try KafkaConsumer(configuration: consumerConfiguration(topic: records[0].topic)), count: records.count)
    }
}
