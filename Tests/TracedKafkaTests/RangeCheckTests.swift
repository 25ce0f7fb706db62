import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// Offsets and counts a user types are range-checked before they reach librdkafka or the file queue: nothing traps,
/// no group silently stops receiving, a missing partition says so.
@Suite("Offsets and counts are range-checked on both backends", .timeLimit(.minutes(2)))
struct RangeCheckTests {
    /// A new one-partition topic holding `count` records.
    static func topicWithRecords(_ backend: TestBackend, _ count: Int, partitions: Int = 1) async throws -> String {
        let topic = try await backend.newTopic("range", partitions: partitions)
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for index in 0..<count { try await producer.send(KafkaProducerRecord(topic: topic, value: "r\(index)", partition: 0)) }
        }
        return topic
    }

    @Test("A tail longer than any partition, up to Int64.max, reads the whole partition instead of trapping", arguments: TestBackend.allCases)
    func hugeTail(_ backend: TestBackend) async throws {
        let topic = try await Self.topicWithRecords(backend, 3)
        let (consumer, _) = try partitionConsumer(backend, [KafkaPartitionStart(topic: topic, partition: 0, offset: .tail(.max))])
        let messages = try await consume(consumer, count: 3)
        #expect(messages.map(\.offset) == [0, 1, 2])
    }

    @Test("A commit past the partition's end is refused; one at its end is taken", arguments: TestBackend.allCases)
    func commitPastEnd(_ backend: TestBackend) async throws {
        let topic = try await Self.topicWithRecords(backend, 3)
        let group = uniqueName("g")
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: group, topics: [topic], commitMode: .manual))
        _ = try await consume(consumer, count: 3) { message in
            guard message.offset == 2 else { return }
            let error = await #expect(throws: KafkaError.self) {
                try await consumer.commit(offsets: [KafkaTopicPartitionOffset(topic: topic, partition: 0, offset: .max - 1)])
            }
            #expect(error?.code == .invalidOffset)
            #expect(error?.reason.contains("the partition ends at 3") == true, "\(String(describing: error))")
            try await consumer.commit(offsets: [KafkaTopicPartitionOffset(topic: topic, partition: 0, offset: 3)])
        }
        let committed = try await committedOffset(
            consumerConfiguration(backend, group: group, topics: [topic], commitMode: .manual), KafkaTopicPartition(topic: topic, partition: 0)
        )
        #expect(committed == 3)
    }

    @Test("A consumer of a partition the topic does not have says so: refused at init, or an error event", arguments: TestBackend.allCases)
    func missingPartition(_ backend: TestBackend) async throws {
        let topic = try await Self.topicWithRecords(backend, 1)
        let start = KafkaPartitionStart(topic: topic, partition: 5)
        let made = Result { try partitionConsumer(backend, [start]) }
        switch made {
        case .failure(let error):
            #expect((error as? KafkaError)?.code == .unknownPartition)
        case .success(let (consumer, events)):
            let running = Task { try await consumer.run { _ in } }
            let error = try await withDeadline("an error event for the missing partition", .seconds(30)) { () -> KafkaError? in
                for await event in events where event.kind == .error { return event.error }
                return nil
            }
            #expect(error?.rdKafkaCode == .unknownPartition, "\(String(describing: error))")
            consumer.triggerGracefulShutdown()
            _ = try? await running.value
        }
    }

    @Test("A record timestamp Kafka cannot hold is refused, not a trap", arguments: TestBackend.allCases)
    func timestampRange(_ backend: TestBackend) async throws {
        let topic = try await backend.newTopic("stamps")
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for timestamp in [Date(timeIntervalSince1970: 1e300), Date(timeIntervalSince1970: -5), Date(timeIntervalSince1970: .nan)] {
                let error = await #expect(throws: KafkaError.self) {
                    try await producer.send(KafkaProducerRecord(topic: topic, value: "x", timestamp: timestamp))
                }
                #expect(error?.code == .invalidRecord)
            }
            let report = try await producer.send(KafkaProducerRecord(topic: topic, value: "x", timestamp: .distantFuture))
            #expect(report.offset == 0)
        }
    }

    @Test("A topic's partition count is 1 to 100,000 on every backend and in every call that makes one")
    func partitionCounts() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("counts")).path
        for count in [0, -1, 100_001, Int(Int32.max) + 10] {
            let direct = #expect(throws: KafkaError.self) { try KafkaFileQueue.createTopic(uniqueName("t"), partitions: count, in: directory) }
            #expect(direct?.code == .configuration)
            for admin in [
                try KafkaAdminClient(configuration: KafkaAdminConfiguration(backend: .fileQueue(directory: directory))),
                try KafkaAdminClient(configuration: KafkaAdminConfiguration(bootstrapServers: ["localhost:9092"])),
            ] {
                let error = await #expect(throws: KafkaError.self) { try await admin.createTopic(uniqueName("t"), partitions: count) }
                #expect(error?.reason == "A topic needs 1 to 100000 partitions, not \(count)")
                await admin.close()
            }
        }
        var configuration = producerConfiguration(.fileQueue)
        configuration.backend = .fileQueue(KafkaFileQueueConfiguration(directory: directory, defaultPartitionCount: 200_000))
        #expect(throws: KafkaError.self) { try KafkaProducer(configuration: configuration) }
    }
}
