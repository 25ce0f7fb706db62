import Foundation
import Synchronization
import Testing
import TracedKafka
import TracedKafkaTesting

@Suite("Consumer groups and commits on both backends")
struct ConsumerGroupTests {
    /// Sends `count` records, with keys spread over the partitions or all to one `partition`; returns their values.
    func produce(_ backend: TestBackend, _ count: Int, to topic: String, partition: Int? = nil, prefix: String = "m") async throws -> [String] {
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        return try await withRunning(producer) { producer in
            for index in 0..<count {
                _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "key-\(index)", value: "\(prefix)\(index)", partition: partition))
            }
            try await producer.flush()
            return (0..<count).map { "\(prefix)\($0)" }
        }
    }

    /// Through librdkafka, the split is the broker's group coordinator's: the integration suite tests it against three
    /// brokers in a process of their own and against Tansu (`UserPathTests`).
    @Test("On the file queue, two consumers in one group split the partitions and together see every message exactly once")
    func groupSplitsPartitions() async throws {
        let backend = TestBackend.fileQueue
        let topic = try await backend.newTopic("group", partitions: 4)
        let group = uniqueName("g")
        let first = try KafkaConsumer.makeConsumerWithEvents(configuration: consumerConfiguration(backend, group: group, topics: [topic]))
        let second = try KafkaConsumer.makeConsumerWithEvents(configuration: consumerConfiguration(backend, group: group, topics: [topic]))
        let split = try await splitBetweenTwoMembers(
            first, second, topic: topic, partitions: 4, total: 400, producer: producerConfiguration(backend)
        )
        #expect(split.everyValueOnce, "\(split)")
        #expect(split.partitionsSplit, "each member reads partitions of its own: \(split)")
    }

    /// Ten records in partition 0 of a new topic, and a consumer configuration for a new group reading it.
    func tenRecords(
        _ backend: TestBackend,
        _ prefix: String,
        commitMode: KafkaConsumerConfiguration.CommitMode = .afterHandled(interval: .milliseconds(100))
    ) async throws -> KafkaConsumerConfiguration {
        let topic = try await backend.newTopic(prefix)
        _ = try await produce(backend, 10, to: topic, partition: 0)
        return consumerConfiguration(backend, group: uniqueName("g"), topics: [topic], commitMode: commitMode)
    }

    @Test("After a manual commit, stop and restart, the consumer resumes after the committed offset", arguments: TestBackend.allCases)
    func manualCommitResume(backend: TestBackend) async throws {
        let configuration = try await tenRecords(backend, "manual", commitMode: .manual)
        let consumer = try KafkaConsumer(configuration: configuration)
        let firstRun = try await consume(consumer, count: 6) { message in
            // Commit up to offset 3 only: the 4th and 5th are read but not committed.
            if message.offset == 3 { try await consumer.commit(message) }
        }
        #expect(firstRun.map(\.offset) == Array(0...5))

        let restarted = try KafkaConsumer(configuration: configuration)
        let secondRun = try await consume(restarted, count: 6)
        #expect(secondRun.map(\.offset) == Array(4...9))
    }

    @Test("In afterHandled mode, stop and restart resumes after the last handled message", arguments: TestBackend.allCases)
    func afterHandledResume(backend: TestBackend) async throws {
        let configuration = try await tenRecords(backend, "handled")
        let firstRun = try await consume(try KafkaConsumer(configuration: configuration), count: 4)
        #expect(firstRun.map(\.offset) == Array(0...3))
        let secondRun = try await consume(try KafkaConsumer(configuration: configuration), count: 6)
        #expect(secondRun.map(\.offset) == Array(4...9))
    }

    @Test("A paused partition delivers nothing until it is resumed", arguments: TestBackend.allCases)
    func pauseResume(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("pause", partitions: 2)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic]))
        let paused = KafkaTopicPartition(topic: topic, partition: 0)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            try await withDeadline("pause and resume") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await consumer.run() }
                    var log = MessageLog(consumer)
                    try await producer.send(KafkaProducerRecord(topic: topic, value: "before", partition: 0))
                    try await log.read(until: "before")
                    try consumer.pause([paused])
                    try await producer.send(KafkaProducerRecord(topic: topic, value: "while paused", partition: 0))
                    // Partition 1 is not paused: once the consumer has fetched from both partitions after the record
                    // above was written, it would have come, had the pause not held partition 0 back.
                    try await log.passWholeFetch(producer, topic: topic, markerPartition: 1)
                    #expect(log.values(of: 0) == ["before"])
                    try consumer.resume([paused])
                    try await log.read(until: "while paused")
                    #expect(log.values(of: 0) == ["before", "while paused"])
                    consumer.triggerGracefulShutdown()
                    try await log.readToEnd()
                    try await group.waitForAll()
                }
            }
        }
    }
}

@Suite("Commit modes keep their promises at shutdown")
struct CommitModeShutdownTests {
    @Test("In automatic mode, messages fetched but never handed out are not committed at shutdown", arguments: TestBackend.allCases)
    func automaticDoesNotCommitBuffered(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("automatic")
        let group = uniqueName("g")
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for index in 0..<50 {
                _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "\(index)", partition: 0))
            }
            try await producer.flush()
        }
        let configuration = consumerConfiguration(backend, group: group, topics: [topic], commitMode: .automatic(interval: .milliseconds(100)))
        let first = try await consume(try KafkaConsumer(configuration: configuration), count: 1)
        #expect(first.map(\.offset) == [0])
        // The next member starts right after the one message handed out, although more were buffered.
        let rest = try await consume(try KafkaConsumer(configuration: configuration), count: 49)
        #expect(rest.map(\.offset) == Array(1...49))
    }
}

@Suite("Failed commits reach the application", .timeLimit(.minutes(1)))
struct CommitFailureTests {
    /// A one-broker cluster of its own (faults are pushed into it) with a one-partition topic of `count` messages.
    func clusterWithMessages(_ count: Int) async throws -> (EmbeddedKafkaCluster, String) {
        let cluster = try EmbeddedKafkaCluster(brokers: 1)
        let topic = uniqueName("commitfail")
        try cluster.createTopic(topic, partitions: 1)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(cluster))) { producer in
            for index in 0..<count { _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)")) }
        }
        return (cluster, topic)
    }

    @Test("A commit librdkafka makes on its interval that the broker refuses becomes an error event")
    func automaticCommitFailureIsAnEvent() async throws {
        let (cluster, topic) = try await clusterWithMessages(2)
        let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: consumerConfiguration(
            cluster, group: uniqueName("g"), topics: [topic], commitMode: .afterHandled(interval: .milliseconds(100))
        ))
        let errors = Shared<[KafkaError]>([])
        let reader = Task { for await event in events { if let error = event.error { errors.withLock { $0.append(error) } } } }
        @Sendable func refused() -> Bool {
            errors.withLock { $0.contains { $0.rdKafkaName == "UNKNOWN" && $0.reason.contains("Automatic commit") } }
        }
        try await handle(consumer, count: 2) { message in
            // The next commit the broker gets is refused. Once the first message is handled, its offset is the one
            // to commit on the interval: the second handler holds on until the refusal has come as an event.
            if message.offset == 0 { try cluster.pushRequestErrors(.offsetCommit, [.unknownServerError]) }
            if message.offset == 1 { while !refused() { try await Task.sleep(for: .milliseconds(10)) } }
        }
        await reader.value
        #expect(refused(), "\(errors.withLock { $0 })")
    }

    @Test("A refused manual commit throws to its caller only, not also as an event")
    func manualCommitFailureIsNotDuplicated() async throws {
        let (cluster, topic) = try await clusterWithMessages(1)
        let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: consumerConfiguration(
            cluster, group: uniqueName("g"), topics: [topic], commitMode: .manual
        ))
        let thrown = Shared<KafkaError?>(nil)
        try await handle(consumer, count: 1) { message in
            try cluster.pushRequestErrors(.offsetCommit, [.unknownServerError])
            do { try await consumer.commit(message) } catch { thrown.withLock { $0 = error as? KafkaError } }
            try await consumer.commit(message)
        }
        #expect(thrown.withLock { $0 }?.rdKafkaName == "UNKNOWN")  // librdkafka's name for UNKNOWN_SERVER_ERROR
        #expect(await errorEvents(events).isEmpty)
    }
}
