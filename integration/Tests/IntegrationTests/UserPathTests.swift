import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// User paths of the README against the running broker (`KAFKA_BOOTSTRAP_SERVERS`) over TCP: a group split by the
/// broker's coordinator, commits, and a service between Kafka and the file queue. The span model across one hop (send
/// and process spans, links, header bytes, batch spans) is tested in the root suite on both backends.
@Suite("User paths against the running broker")
struct UserPathTests {
    @Test("Two members of one consumer group split the partitions and together see every message once")
    func consumerGroup() async throws {
        let topic = try await Integration.topic("group")
        let group = Integration.group("split")
        let first = try KafkaConsumer.makeConsumerWithEvents(configuration: consumerConfiguration(group: group, topics: [topic]))
        let second = try KafkaConsumer.makeConsumerWithEvents(configuration: consumerConfiguration(group: group, topics: [topic]))
        let split = try await splitBetweenTwoMembers(
            first, second, topic: topic, partitions: 4, total: 400, producer: producerConfiguration(), limit: .seconds(120)
        )
        #expect(split.everyValueOnce, "\(split)")
        #expect(split.partitionsSplit, "each member reads partitions of its own: \(split)")
    }

    @Test("A manual commit is where the group's next member resumes")
    func manualCommitResumes() async throws {
        let topic = try await Integration.topic("commit")
        let group = Integration.group("commit")
        let producer = try KafkaProducer(configuration: producerConfiguration())
        try await withRunning(producer) { producer in
            for index in 0..<10 { _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "c\(index)", partition: 0)) }
        }
        let first = try KafkaConsumer(configuration: consumerConfiguration(group: group, topics: [topic], commitMode: .manual))
        let firstBatch = try await consume(first, count: 10) { message in
            if message.offset == 5 { try await first.commit(message) }
        }
        #expect(firstBatch.map(\.offset) == Array(0..<10))
        let second = try KafkaConsumer(configuration: consumerConfiguration(group: group, topics: [topic], commitMode: .manual))
        let rest = try await consume(second, count: 4)
        #expect(rest.map(\.offset) == [6, 7, 8, 9])
        #expect(rest.map(\.valueString) == ["c6", "c7", "c8", "c9"])
    }

    @Test("The file-queue backend beside the broker: a service forwards from Kafka into a local queue, one trace throughout")
    func fileQueueBesideTheBroker() async throws {
        let topic = try await Integration.topic("bridge")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("it-\(Integration.runID)-queue").path
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = KafkaBackend.fileQueue(directory: directory)
        let localTopic = "outbox"
        try KafkaFileQueue.createTopic(localTopic, partitions: 2, in: directory)
        let tracer = W3CRecordingTracer()
        let delivered = try await withTracer(tracer) {
            let kafkaProducer = try KafkaProducer(configuration: producerConfiguration())
            try await withRunning(kafkaProducer) { producer in
                try await withSpan("request") { _ in
                    _ = try await producer.send(KafkaProducerRecord(topic: topic, key: "order-1", value: "espresso"))
                }
            }
            var localConfiguration = producerConfiguration()
            localConfiguration.backend = queue
            let localProducer = try KafkaProducer(configuration: localConfiguration)
            try await withRunning(localProducer) { localProducer in
                let bridge = try KafkaConsumer(configuration: consumerConfiguration(group: Integration.group("bridge"), topics: [topic]))
                try await handle(bridge, count: 1) { message in
                    _ = try await localProducer.send(KafkaProducerRecord(topic: localTopic, key: message.key, value: message.value))
                }
            }
            var localConsumerConfiguration = consumerConfiguration(group: "local", topics: [localTopic])
            localConsumerConfiguration.backend = queue
            return try await handle(try KafkaConsumer(configuration: localConsumerConfiguration), count: 1)
        }
        let request = try span(tracer, "request")
        let kafkaSend = try span(tracer, "send \(topic)")
        let kafkaProcess = try span(tracer, "process \(topic)")
        let localSend = try span(tracer, "send \(localTopic)")
        let localProcess = try span(tracer, "process \(localTopic)")
        #expect(kafkaSend.isChild(of: request))
        #expect(kafkaProcess.isChild(of: kafkaSend))
        #expect(localSend.isChild(of: kafkaProcess))
        #expect(localProcess.isChild(of: localSend) && localProcess.links(to: localSend))
        #expect(localSend.attributes.get("server.address") == nil, "the file queue has no server")
        #expect(delivered[0].valueString == "espresso" && delivered[0].keyString == "order-1")
        #expect(Set(tracer.finishedSpans.map(\.traceID)) == [request.traceID])
    }
}
