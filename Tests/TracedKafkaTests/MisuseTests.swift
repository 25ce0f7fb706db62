import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

@Suite("Bad input and misuse get typed errors, never a crash")
struct MisuseTests {
    let cluster = KafkaTestCluster.shared

    @Test("An unknown property fails at init with librdkafka's message")
    func unknownProperty() throws {
        let error = #expect(throws: KafkaError.self) {
            try KafkaProducer(configuration: producerConfiguration(cluster, properties: ["no.such.property": "1"]))
        }
        #expect(error?.code == .configuration)
        #expect(error?.reason.contains("No such configuration property") == true)
        #expect(error?.reason.contains("no.such.property") == true)
    }

    @Test("An invalid value fails at init with librdkafka's message")
    func invalidValue() throws {
        let error = #expect(throws: KafkaError.self) {
            try KafkaConsumer(
                configuration: consumerConfiguration(cluster, group: "g", topics: ["t"], properties: ["session.timeout.ms": "banana"]))
        }
        #expect(error?.code == .configuration)
        #expect(error?.reason.contains("session.timeout.ms") == true)
    }

    @Test("A record with an empty topic name is refused")
    func emptyTopic() async throws {
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster))
        await withRunningIgnoringResult(producer) { producer in
            let error = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: "", value: "x"))
            }
            #expect(error?.code == .invalidRecord)
            let enqueueError = await #expect(throws: KafkaError.self) {
                try await producer.enqueue(KafkaProducerRecord(topic: "", value: "x"))
            }
            #expect(enqueueError?.code == .invalidRecord)
        }
    }

    @Test("A send after shutdown fails with shutDown")
    func sendAfterShutdown() async throws {
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster))
        try await withRunning(producer) { _ in }
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(KafkaProducerRecord(topic: uniqueName("late"), value: "x"))
        }
        #expect(error?.code == .shutDown)
        let flushError = await #expect(throws: KafkaError.self) { try await producer.flush() }
        #expect(flushError?.code == .shutDown)
    }

    @Test("A consumer with nothing to read (no group, topics or partitions) or an empty topic name is refused; a group member without topics is not")
    func consumerWithoutTopics() throws {
        let error = #expect(throws: KafkaError.self) {
            var configuration = consumerConfiguration(cluster, group: "g", topics: [])
            configuration.groupID = nil
            _ = try KafkaConsumer(configuration: configuration)
        }
        #expect(error?.code == .noTopics)
        let member = try KafkaConsumer(configuration: consumerConfiguration(cluster, group: uniqueName("g"), topics: []))
        #expect(member.subscribedTopics.isEmpty)
        member.triggerGracefulShutdown()
        let emptyName = #expect(throws: KafkaError.self) {
            try KafkaConsumer(configuration: consumerConfiguration(cluster, group: "g", topics: ["ok", ""]))
        }
        #expect(emptyName?.code == .noTopics)
    }

    @Test("A second run() of a producer fails with alreadyRunning, also after shutdown")
    func producerSecondRun() async throws {
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster))
        try await expectOneFailsAtOnce({ try await producer.run() }, { try await producer.run() }, thenShutDown: producer.triggerGracefulShutdown)
        let after = await #expect(throws: KafkaError.self) { try await producer.run() }
        #expect(after?.code == .alreadyRunning)
    }

    @Test("A second run() of a consumer fails with alreadyRunning, also after shutdown")
    func consumerSecondRun() async throws {
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster, group: uniqueName("g"), topics: [uniqueName("t")]))
        try await expectOneFailsAtOnce({ try await consumer.run() }, { try await consumer.run() }, thenShutDown: consumer.triggerGracefulShutdown)
        let after = await #expect(throws: KafkaError.self) { try await consumer.run() }
        #expect(after?.code == .alreadyRunning)
        let commitAfter = await #expect(throws: KafkaError.self) {
            try await consumer.commit(offsets: [KafkaTopicPartitionOffset(topic: "t", partition: 0, offset: 1)])
        }
        #expect(commitAfter?.code == .shutDown)
    }

    @Test("Task cancellation of run() shuts the producer down and delivers what was queued")
    func cancellationShutsDown() async throws {
        let topic = try await newTopic("cancel")
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: producerConfiguration(cluster))
        let run = Task { try await producer.run() }
        for index in 0..<100 { try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "\(index)")) }
        run.cancel()
        try await run.value
        var delivered = 0
        for await event in events { if case .delivered = event { delivered += 1 } }
        #expect(delivered == 100)
    }
}

/// Starts `first` and `second` at once. Whichever comes second must fail at once with `alreadyRunning` (the other
/// keeps running, so the first to finish is the one refused); then `shutDown` ends the other, which must return.
/// No sleep decides the order, so the test holds however the two tasks are scheduled.
func expectOneFailsAtOnce(
    _ first: @escaping @Sendable () async throws -> Void,
    _ second: @escaping @Sendable () async throws -> Void,
    thenShutDown shutDown: @escaping @Sendable () -> Void
) async throws {
    try await withDeadline("two runs at once") {
        try await withThrowingTaskGroup(of: KafkaError?.self) { group in
            for run in [first, second] {
                group.addTask {
                    do {
                        try await run()
                        return nil
                    } catch let error as KafkaError {
                        return error
                    }
                }
            }
            let refused = try await group.next()
            #expect(refused??.code == .alreadyRunning)
            shutDown()
            let ran = try await group.next()
            #expect(ran != nil, "the other run() did not return")
            if case .some(.some(let error)) = ran { Issue.record("the other run() failed: \(error)") }
        }
    }
}

/// Runs a producer around a body that reports its own expectations.
func withRunningIgnoringResult(_ producer: KafkaProducer, _ body: @escaping @Sendable (KafkaProducer) async -> Void) async {
    do {
        try await withRunning(producer) { producer in await body(producer) }
    } catch {
        Issue.record("The producer failed: \(error)")
    }
}

@Suite("Misuse of the consumer's readers")
struct ConsumerReaderMisuseTests {
    @Test("A second reader of the messages gets alreadyRunning, not a crash")
    func secondReader() async throws {
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [uniqueName("t")]))
        let first = consumer.messages.makeAsyncIterator()
        var second = consumer.messages.makeAsyncIterator()
        let error = await #expect(throws: KafkaError.self) { _ = try await second.next() }
        #expect(error?.code == .alreadyRunning)
        let handlerError = await #expect(throws: KafkaError.self) { try await consumer.run { _ in } }
        #expect(handlerError?.code == .alreadyRunning)
        _ = first
        consumer.triggerGracefulShutdown()
    }

    @Test("run(_:) beside a running run(), in either order, fails at once")
    func handlerBesideRun() async throws {
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [uniqueName("t")]))
        try await expectOneFailsAtOnce({ try await consumer.run() }, { try await consumer.run { _ in } }, thenShutDown: consumer.triggerGracefulShutdown)
    }
}
