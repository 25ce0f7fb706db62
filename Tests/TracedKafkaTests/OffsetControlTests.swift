import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// Sends `count` records ("p<partition>-<i>") to each partition of `topic` (traced by the ambient tracer when asked).
func fill(_ topic: String, partitions: Int, count: Int, on backend: TestBackend, tracing: KafkaTracingConfiguration = .disabled) async throws {
    var configuration = producerConfiguration(backend)
    configuration.tracing = tracing
    try await withRunning(try KafkaProducer(configuration: configuration)) { producer in
        for partition in 0..<partitions {
            for index in 0..<count {
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "p\(partition)-\(index)", partition: partition))
            }
        }
    }
}

/// A consumer of given partitions (with a group when `group` is set).
func partitionConsumer(
    _ backend: TestBackend,
    _ partitions: [KafkaPartitionStart],
    group: String? = nil,
    commitMode: KafkaConsumerConfiguration.CommitMode = .afterHandled(interval: .milliseconds(50)),
    tracing: KafkaTracingConfiguration = .disabled
) throws -> (KafkaConsumer, AsyncStream<KafkaConsumerEvent>) {
    var configuration = KafkaConsumerConfiguration(
        bootstrapServers: KafkaTestCluster.shared.bootstrapServerList, partitions: partitions, groupID: group,
        autoOffsetReset: .earliest, commitMode: commitMode, tracing: tracing,
        properties: KafkaConsumerConfiguration.fastGroupProperties
    )
    configuration.backend = backend.backend
    return try KafkaConsumer.makeConsumerWithEvents(configuration: configuration)
}

/// The committed offset of a partition for the group of `configuration`, read by a consumer of its own.
func committedOffset(_ configuration: KafkaConsumerConfiguration, _ partition: KafkaTopicPartition) async throws -> Int64? {
    let check = try KafkaConsumer(configuration: configuration)
    return try await withThrowingTaskGroup(of: Int64?.self) { group in
        group.addTask {
            try await check.run()
            return nil
        }
        let offsets = try await check.committed([partition])
        check.triggerGracefulShutdown()
        try await group.waitForAll()
        return offsets[partition]
    }
}

@Suite("Offsets and assignment: given partitions, seek, position, committed, lost")
struct OffsetControlTests {
    @Test("Given partitions without a group: read from their offsets, traced as in a group; group-only calls refused", arguments: TestBackend.allCases)
    func givenPartitionsWithoutGroup(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("given", partitions: 2)
        try await withTracer(tracer) { try await fill(topic, partitions: 2, count: 10, on: backend, tracing: .enabled) }
        let (consumer, events) = try partitionConsumer(backend, [
            KafkaPartitionStart(topic: topic, partition: 0, offset: .offset(3)),
            KafkaPartitionStart(topic: topic, partition: 1, offset: .tail(2)),
        ], tracing: .enabled)
        #expect(Set(consumer.assignment) == [KafkaTopicPartition(topic: topic, partition: 0), KafkaTopicPartition(topic: topic, partition: 1)])
        let errors = Shared<[KafkaError.Code?]>([])
        let messages = try await withTracer(tracer) {
            try await handle(consumer, count: 9) { message in
                for call in [{ try await consumer.commit(message) }, { _ = try await consumer.committed([KafkaTopicPartition(topic: topic, partition: 0)]) }] {
                    do { try await call() } catch { errors.withLock { $0.append((error as? KafkaError)?.code) } }
                }
            }
        }
        #expect(messages.filter { $0.partition == 0 }.map(\.offset) == Array(3...9))
        #expect(messages.filter { $0.partition == 1 }.map(\.offset) == [8, 9])
        #expect(errors.withLock { $0 }.allSatisfy { $0 == .noGroup } && errors.withLock { $0 }.count == 18)
        let first = try #require(messages.first)
        let process = try #require(tracer.spans(named: "process \(topic)").first { $0.int("messaging.kafka.offset") == first.offset && $0.string("messaging.destination.partition.id") == "\(first.partition)" })
        let send = try #require(tracer.spans(named: "send \(topic)").first { $0.spanID == process.parentSpanID })
        #expect(process.isChild(of: send) && process.links(to: send))
        #expect(process.attributes.get("messaging.consumer.group.name") == nil)
        var kinds: [KafkaConsumerEvent.Kind] = []
        for await event in events { kinds.append(event.kind) }
        #expect(kinds.first == .partitionsAssigned)
    }

    @Test("Given partitions with a group commit, and a successor starts from the committed offset", arguments: TestBackend.allCases)
    func givenPartitionsWithGroup(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("given-group")
        try await fill(topic, partitions: 1, count: 10, on: backend)
        let group = uniqueName("g")
        let (first, _) = try partitionConsumer(backend, [KafkaPartitionStart(topic: topic, partition: 0)], group: group)
        #expect(try await handle(first, count: 4).map(\.offset) == [0, 1, 2, 3])
        let (second, _) = try partitionConsumer(backend, [KafkaPartitionStart(topic: topic, partition: 0, offset: .committed)], group: group)
        let committed = Shared<[KafkaTopicPartition: Int64]>([:])
        let rest = try await handle(second, count: 6) { message in
            guard message.offset == 4 else { return }
            let now = try await second.committed([KafkaTopicPartition(topic: topic, partition: 0)])
            committed.withLock { $0 = now }
        }
        #expect(rest.map(\.offset) == Array(4...9))
        #expect(committed.withLock { $0 } == [KafkaTopicPartition(topic: topic, partition: 0): 4])
    }

    @Test("Seek moves an owned partition back and forward; what is committed is what was handled after it", arguments: TestBackend.allCases)
    func seek(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("seek")
        try await fill(topic, partitions: 1, count: 10, on: backend)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        let group = uniqueName("g")
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: group, topics: [topic]))
        let refusals = Shared<[KafkaError.Code?]>([])
        let (messages, positions) = try await handleTrackingPosition(consumer, count: 11, in: partition) { pass, _ in
            if pass == 5 {
                // Refusals first: a partition not owned, offsets out of range or negative, the committed offset.
                for (target, offset) in [(KafkaTopicPartition(topic: topic, partition: 7), KafkaOffset.beginning), (partition, .offset(1_000)),
                                         (partition, .offset(-1)), (partition, .committed)] {
                    do { try await consumer.seek(target, to: offset) } catch { refusals.withLock { $0.append((error as? KafkaError)?.code) } }
                }
                try await consumer.seek(partition, to: .offset(2))   // back: 2, 3, … again
            }
            if pass == 8 { try await consumer.seek(partition, to: .tail(3)) }   // forward: 7, 8, 9
        }
        #expect(messages.map(\.offset) == [0, 1, 2, 3, 4, 2, 3, 4, 7, 8, 9])
        #expect(refusals.withLock { $0 } == [.notAssigned, .invalidOffset, .invalidOffset, .invalidOffset])
        #expect(positions.prefix(5) == [1, 2, 3, 4, 5])
        #expect(positions[5] == 3, "after the seek to 2, handling 2: the next is 3")
        // The group's committed offset is after the last handled message, whatever came before the seeks.
        let committed = try await committedOffset(consumerConfiguration(backend, group: group, topics: [topic]), partition)
        #expect(committed == messages.last.map { $0.offset + 1 })
    }

    @Test("committed() reads what commit() wrote; a partition never committed has no entry", arguments: TestBackend.allCases)
    func committedAfterCommit(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("committed", partitions: 2)
        try await fill(topic, partitions: 1, count: 5, on: backend)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic], commitMode: .manual))
        let read = Shared<[KafkaTopicPartition: Int64]>([:])
        try await handle(consumer, count: 5) { message in
            guard message.offset == 4 else { return }
            try await consumer.commit(message)
            let offsets = try await consumer.committed([KafkaTopicPartition(topic: topic, partition: 0), KafkaTopicPartition(topic: topic, partition: 1)])
            read.withLock { $0 = offsets }
        }
        #expect(read.withLock { $0 } == [KafkaTopicPartition(topic: topic, partition: 0): 5])
    }

    @Test("A member thrown out of its group reports its partitions lost, not revoked, and commits nothing for them")
    func lostAssignment() async throws {
        let cluster = try EmbeddedKafkaCluster(brokers: 1)
        let topic = uniqueName("lost")
        try cluster.createTopic(topic, partitions: 1)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(cluster))) { producer in
            for index in 0..<3 { _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)")) }
        }
        let configuration = consumerConfiguration(cluster, group: uniqueName("g"), topics: [topic])
        let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: configuration)
        let kinds = Shared<[KafkaConsumerEvent.Kind]>([])
        let observer = Task {
            for await event in events { kinds.withLock { $0.append(event.kind) } }
        }
        try await handle(consumer, count: 1, limit: .seconds(60)) { _ in
            // While the first message is being handled, the coordinator forgets the member: its heartbeats are
            // answered UNKNOWN_MEMBER_ID.
            try cluster.pushRequestErrors(.heartbeat, [.unknownMemberID, .unknownMemberID])
            while !kinds.withLock({ $0.contains(.partitionsLost) }) { try await Task.sleep(for: .milliseconds(20)) }
        }
        await observer.value
        #expect(kinds.withLock { $0 }.contains(.partitionsLost))
        #expect(!kinds.withLock { $0 }.prefix { $0 != .partitionsLost }.contains(.partitionsRevoked))
        // The message handled across the loss belonged to a generation that is gone: nothing was committed for it.
        #expect(try await committedOffset(configuration, KafkaTopicPartition(topic: topic, partition: 0)) == nil)
    }
}
