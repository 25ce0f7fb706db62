import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// Seek, position, committed and given partitions against the running broker, over TCP.
@Suite("Offsets and assignment against the running broker")
struct OffsetControlIntegrationTests {
    /// Sends "m0"… to partition 0 of a new topic.
    func topicWithMessages(_ suffix: String, count: Int) async throws -> String {
        let topic = try await Integration.topic(suffix, partitions: 1)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration())) { producer in
            for index in 0..<count { _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)", partition: 0)) }
        }
        return topic
    }

    @Test("A group member seeks back and forward, knows its position, and commits what it handled after the seek")
    func seekPositionCommitted() async throws {
        let topic = try await topicWithMessages("seek", count: 10)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(group: Integration.group("seek"), topics: [topic], commitMode: .manual))
        let committed = Shared<[KafkaTopicPartition: Int64]>([:])
        let (messages, positions) = try await handleTrackingPosition(consumer, count: 8, in: partition) { pass, message in
            if pass == 3 { try await consumer.seek(partition, to: .beginning) }
            if pass == 5 { try await consumer.seek(partition, to: .tail(3)) }
            if pass == 8 {
                try await consumer.commit(message)
                let offsets = try await consumer.committed([partition])
                committed.withLock { $0 = offsets }
            }
        }
        #expect(messages.map(\.offset) == [0, 1, 2, 0, 1, 7, 8, 9])
        #expect(positions == [1, 2, 3, 1, 2, 8, 9, 10])
        #expect(committed.withLock { $0 } == [partition: 10])
    }

    @Test("A consumer of given partitions without a group reads from its offset and cannot commit")
    func givenPartitions() async throws {
        let topic = try await topicWithMessages("given", count: 6)
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: Integration.bootstrapServerList,
            partitions: [KafkaPartitionStart(topic: topic, partition: 0, offset: .offset(4))],
            properties: KafkaConsumerConfiguration.fastGroupProperties
        )
        configuration.clientID = "integration"
        let consumer = try KafkaConsumer(configuration: configuration)
        let refusal = Shared<KafkaError.Code?>(nil)
        let messages = try await handle(consumer, count: 2) { message in
            do { try await consumer.commit(message) } catch { refusal.withLock { $0 = (error as? KafkaError)?.code } }
        }
        #expect(messages.compactMap(\.valueString) == ["m4", "m5"])
        #expect(refusal.withLock { $0 } == .noGroup)
    }
}
