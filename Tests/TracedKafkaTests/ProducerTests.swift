import Foundation
import InMemoryLogging
import Logging
import Synchronization
import Testing
import TracedKafka
import TracedKafkaTesting

@Suite("Producer delivery, back-pressure, shutdown and faults")
struct ProducerTests {
    @Test("Graceful shutdown with 10k queued records loses none")
    func shutdownLosesNothing() async throws {
        let cluster = KafkaTestCluster.shared
        let topic = try await newTopic("shutdown", partitions: 2)
        let count = 10_000
        // A long linger keeps the records queued in librdkafka when shutdown begins.
        var configuration = producerConfiguration(cluster)
        configuration.linger = .milliseconds(500)
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await producer.run() }
            for index in 0..<count {
                try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "\(index)", value: "v\(index)"))
            }
            producer.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        let (delivered, failed) = await countOutcomes(events)
        #expect(delivered == count)
        #expect(failed == 0)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: count, limit: .seconds(120))
        #expect(Set(messages.compactMap(\.valueString)).count == count)
    }

    @Test("A full librdkafka queue makes senders wait, and every record is delivered")
    func backPressure() async throws {
        let cluster = KafkaTestCluster.shared
        let topic = try await newTopic("backpressure")
        let configuration = producerConfiguration(cluster, properties: ["queue.buffering.max.messages": "10"])
        let producer = try KafkaProducer(configuration: configuration)
        let offsets = try await withRunning(producer) { producer in
            try await withThrowingTaskGroup(of: Int64.self) { group in
                for index in 0..<1_000 {
                    group.addTask {
                        try await producer.send(KafkaProducerRecord(topic: topic, key: "same", value: "\(index)")).offset
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0.append($1) }
            }
        }
        #expect(Set(offsets) == Set(0..<1_000))
    }

    @Test("With tracing and metrics off and no events stream, enqueue waits for room in a full queue and loses nothing")
    func unobservedEnqueueIntoFullQueue() async throws {
        // The path a record takes when nothing observes its outcome: no span, no metrics, no delivery handler.
        let cluster = KafkaTestCluster.shared
        let topic = try await newTopic("unobserved")
        var configuration = producerConfiguration(cluster, properties: ["queue.buffering.max.messages": "10"])
        configuration.tracing = .disabled
        configuration.metrics = .disabled
        let producer = try KafkaProducer(configuration: configuration)
        let count = 500
        let ids = try await withRunning(producer) { producer in
            var ids: [UInt64] = []
            for index in 0..<count {
                ids.append(try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "same", value: "\(index)")).rawValue)
            }
            let refused = await #expect(throws: KafkaError.self) {
                try await producer.enqueue(KafkaProducerRecord(topic: "not a topic!", value: "x"))
            }
            #expect(refused?.code == .invalidRecord)
            // Refused by librdkafka itself, on the same path (the topic's one partition is known by now).
            let unknown = await #expect(throws: KafkaError.self) {
                try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "x", partition: 5))
            }
            #expect(unknown?.code == .unknownPartition)
            try await producer.flush()
            return ids
        }
        #expect(Set(ids).count == count)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: count, limit: .seconds(30))
        #expect(messages.compactMap(\.valueString) == (0..<count).map { "\($0)" })
    }

    /// A one-broker cluster of its own with a one-partition topic, and a running producer that has delivered one
    /// record (offset 0) there, so metadata and connections are warm before a fault is injected.
    func withWarmProducer<T: Sendable>(
        properties: [String: String] = [:],
        _ body: @escaping @Sendable (EmbeddedKafkaCluster, String, KafkaProducer) async throws -> T
    ) async throws -> T {
        let cluster = try EmbeddedKafkaCluster(brokers: 1)
        let topic = uniqueName("fault")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster, properties: properties))
        return try await withRunning(producer) { producer in
            let warmUp = try await producer.send(KafkaProducerRecord(topic: topic, value: "warm-up"))
            #expect(warmUp.offset == 0)
            return try await body(cluster, topic, producer)
        }
    }

    // A broker going down and coming back is the integration suite's (FaultTests, run one at a time): librdkafka
    // 2.0.2's mock can abort the process when it re-binds a listener while parallel tests open sockets. These use a
    // broker that answers late instead, which closes no socket.

    @Test("A send that cannot be acknowledged in time fails with librdkafka's error, not silently")
    func brokerTooSlowTimesOut() async throws {
        let error = try await withWarmProducer(properties: ["message.timeout.ms": "1500", "request.timeout.ms": "1000"]) {
            cluster, topic, producer in
            try cluster.setRoundTripTime(1, .seconds(5))
            return await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "lost?"))
            }
        }
        #expect(error?.code == .rdKafka)
        #expect(error?.rdKafkaName == "_MSG_TIMED_OUT")
    }

    @Test("Retriable produce errors pushed by the broker are retried and the record is delivered once")
    func retriableProduceErrors() async throws {
        let report = try await withWarmProducer(properties: ["retry.backoff.ms": "10"]) { cluster, topic, producer in
            try cluster.pushRequestErrors(.produce, [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas])
            return try await producer.send(KafkaProducerRecord(topic: topic, value: "after errors"))
        }
        #expect(report.offset == 1)
    }

    @Test("A non-retriable produce error reaches the caller")
    func fatalProduceError() async throws {
        let error = try await withWarmProducer { cluster, topic, producer in
            try cluster.pushRequestErrors(.produce, [.topicAuthorizationFailed])
            return await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "denied"))
            }
        }
        #expect(error?.rdKafkaName == "TOPIC_AUTHORIZATION_FAILED")
    }

    @Test(
        "compression: every batch librdkafka sends is compressed with the codec (its produce log names the codec, the batches are a fraction of the records' bytes), and the consumer gets the records back byte for byte",
        arguments: [KafkaProducerConfiguration.Compression.gzip, .snappy, .lz4, .zstd]
    )
    func compression(codec: KafkaProducerConfiguration.Compression) async throws {
        let topic = try await newTopic("compressed")
        var handler = InMemoryLogHandler()
        handler.logLevel = .debug
        let captured = handler
        // librdkafka's `msg` debug lines give each batch it produces: its record count, its size and its codec.
        var configuration = producerConfiguration(KafkaTestCluster.shared, properties: ["debug": "msg"])
        configuration.compression = codec
        let values = (0..<20).map { index in Array(String(repeating: "espresso \(index) ", count: 1_000).utf8) }
        let producer = try KafkaProducer(configuration: configuration, logger: Logger(label: "test") { _ in captured })
        try await withRunning(producer) { producer in
            for value in values { try await producer.enqueue(KafkaProducerRecord(topic: topic, value: value)) }
            try await producer.flush()
        }
        // "<topic> [0]: Produce MessageSet with 20 message(s) (1234 bytes, ApiVersion 7, MsgVersion 2, …, lz4)"
        let batches = handler.entries.compactMap { entry -> (count: Int, bytes: Int, codec: String)? in
            let line = "\(entry.message)"
            guard line.contains("\(topic) ["),
                let match = line.firstMatch(of: /Produce MessageSet with (\d+) message\(s\) \((\d+) bytes, .*, ([a-z0-9]+)\)$/)
            else { return nil }
            return (Int(match.1) ?? 0, Int(match.2) ?? 0, String(match.3))
        }
        #expect(batches.map(\.count).reduce(0, +) == values.count, "\(batches)")
        #expect(batches.allSatisfy { $0.codec == codec.description }, "\(batches)")
        let recordBytes = values.map(\.count).reduce(0, +)
        #expect(batches.map(\.bytes).reduce(0, +) < recordBytes / 10, "\(batches) for \(recordBytes) bytes of records")
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [topic]))
        let messages = try await handle(consumer, count: values.count)
        #expect(messages.map(\.value) == values)
    }
}
