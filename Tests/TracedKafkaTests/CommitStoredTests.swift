import Testing
import TracedKafka
import TracedKafkaTesting

@Suite("Committing the stored positions on demand")
struct CommitStoredTests {
    @Test(
        "commit() commits the position after the last handled message at once, not at the interval; with nothing stored it commits nothing",
        arguments: TestBackend.allCases
    )
    func commitStored(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("commit-stored")
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for index in 0..<3 { try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)")) }
        }
        // An interval far longer than the test: only commit() can commit.
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic], commitMode: .afterHandled(interval: .seconds(600)))
        )
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        let seen = Shared<[Int64?]>([])
        _ = try await handle(consumer, count: 3) { message in
            if message.offset == 0 {
                // Nothing handled yet: nothing to commit.
                try await consumer.commit()
                let before = try await consumer.committed([partition])[partition]
                seen.withLock { $0.append(before) }
            }
            if message.offset == 2 {
                // Offsets 0 and 1 are handled (the loop asked for the next message after each): position 2.
                try await consumer.commit()
                let after = try await consumer.committed([partition])[partition]
                seen.withLock { $0.append(after) }
            }
        }
        #expect(seen.withLock { $0 } == [nil, 2])
    }

    @Test("commit() needs a group")
    func needsGroup() async throws {
        let topic = try await TestBackend.fileQueue.newTopic("commit-stored-nogroup")
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                bootstrapServers: [], partitions: [KafkaPartitionStart(topic: topic, partition: 0)], backend: TestBackend.fileQueue.backend
            )
        )
        await #expect { try await consumer.commit() } throws: { ($0 as? KafkaError)?.code == .noGroup }
    }
}
