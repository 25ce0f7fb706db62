import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

@Suite("Timestamps: what they mean on both backends")
struct TimestampTests {
    @Test("A consumed message's timestamp is the producer's create time, and says so; a record's own timestamp is kept", arguments: TestBackend.allCases)
    func createTime(_ backend: TestBackend) async throws {
        let topic = try await backend.newTopic("timestamps")
        let given = Date(timeIntervalSince1970: 1_700_000_000.123)
        let before = Date()
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        let reports = try await withRunning(producer) { producer in
            [
                try await producer.send(KafkaProducerRecord(topic: topic, value: "now")),
                try await producer.send(KafkaProducerRecord(topic: topic, value: "given", timestamp: given)),
            ]
        }
        switch backend {
        case .fileQueue:
            #expect(reports.map(\.timestampType) == [.createTime, .createTime])
            #expect(reports[1].timestamp == given)
        case .librdkafka where KafkaTestCluster.shared.embedded != nil:
            // The embedded broker's artefact, as documented on KafkaDeliveryReport.timestamp.
            #expect(reports.map(\.timestampType) == [.logAppendTime, .logAppendTime])
            #expect(reports.map(\.timestamp) == [Date(timeIntervalSince1970: 1.234), Date(timeIntervalSince1970: 1.234)])
        case .librdkafka:
            #expect(reports[1].timestamp == given)
        }
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: 2)
        #expect(messages.map(\.timestampType) == [.createTime, .createTime])
        let now = try #require(messages[0].timestamp)
        #expect(abs(now.timeIntervalSince(before)) < 60)
        #expect(messages[1].timestamp == given)
    }
}
