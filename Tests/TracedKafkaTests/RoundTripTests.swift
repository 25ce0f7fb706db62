import Foundation
import Testing
@testable import TracedKafka
import TracedKafkaTesting

@Suite("Produce and consume round trip on both backends")
struct RoundTripTests {
    @Test("Keys, values, headers (order, repeats, nil values), tombstones and explicit partitions survive the trip", arguments: TestBackend.allCases)
    func roundTrip(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("roundtrip", partitions: 3)
        let headers: KafkaHeaders = [
            KafkaHeader(key: "b", value: "first"),
            KafkaHeader(key: "a", value: [0, 255, 1]),
            KafkaHeader(key: "b", value: "second"),
            KafkaHeader(key: "empty", value: [UInt8]()),
            KafkaHeader(key: "none", value: nil),
        ]
        let stamp = Date(timeIntervalSince1970: 1_700_000_000.123)
        let records = [
            KafkaProducerRecord(topic: topic, key: "k1", value: "hello", headers: headers, partition: 2, timestamp: stamp),
            KafkaProducerRecord(topic: topic, key: "k2", value: nil as String?, partition: 2),
            KafkaProducerRecord(topic: topic, key: nil as [UInt8]?, value: [UInt8](), partition: 2),
            KafkaProducerRecord(topic: topic, key: [0xde, 0xad], value: Array(repeating: 7, count: 100_000), partition: 2),
        ]
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        let reports = try await withRunning(producer) { producer in
            var reports: [KafkaDeliveryReport] = []
            for record in records { reports.append(try await producer.send(record)) }
            return reports
        }
        #expect(reports.map(\.partition) == [2, 2, 2, 2])
        #expect(reports.map(\.offset) == [0, 1, 2, 3])
        #expect(reports.allSatisfy { $0.topic == topic })

        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: records.count)
        #expect(messages.map(\.offset) == [0, 1, 2, 3])
        for (message, record) in zip(messages, records) {
            #expect(message.topic == topic)
            #expect(message.partition == 2)
            #expect(message.key == record.key)
            #expect(message.value == record.value)
            #expect(message.headers == record.headers)
        }
        #expect(messages[0].headers.values(forKey: "b") == [Array("first".utf8), Array("second".utf8)])
        #expect(messages[0].headers.lastValue(forKey: "none") == nil)
        #expect(messages[0].timestamp == Date(timeIntervalSince1970: 1_700_000_000.123))
        #expect(messages[1].isTombstone)
        #expect(messages[2].value == [] && !messages[2].isTombstone)
        #expect(messages[2].key == nil)
        #expect(messages.map(\.keyString) == ["k1", "k2", nil, "\u{07AD}"], "0xDE 0xAD is UTF-8 for U+07AD")
    }

    @Test("A key's and a value's text is read as UTF-8: ASCII, multibyte, empty; bytes that are not UTF-8 give none", arguments: TestBackend.allCases)
    func keyText(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("key-text")
        let keys: [[UInt8]] = [Array("plain".utf8), Array("grüße-😀".utf8), [], [0x66, 0xC3], [0xFF]]
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for key in keys { _ = try await producer.send(KafkaProducerRecord(topic: topic, key: key, value: key, partition: 0)) }
        }
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: keys.count)
        #expect(messages.map(\.keyString) == ["plain", "grüße-😀", "", nil, nil])
        #expect(messages.map(\.key) == keys)
        #expect(messages.map(\.valueString) == ["plain", "grüße-😀", "", nil, nil])
    }

    @Test("Records with the same key land on the same partition", arguments: TestBackend.allCases)
    func sameKeySamePartition(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("keys", partitions: 4)
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        let partitions = try await withRunning(producer) { producer in
            var byKey: [String: Set<Int>] = [:]
            for index in 0..<60 {
                let key = "customer-\(index % 5)"
                let report = try await producer.send(KafkaProducerRecord(topic: topic, key: key, value: "\(index)"))
                byKey[key, default: []].insert(report.partition)
            }
            return byKey
        }
        #expect(partitions.count == 5)
        #expect(partitions.values.allSatisfy { $0.count == 1 })
        #expect(Set(partitions.values.joined()).count > 1, "the keys must not all land on one partition")
    }

    @Test("Fire-and-forget sends report every outcome on the events sequence", arguments: TestBackend.allCases)
    func enqueueEvents(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("events")
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: producerConfiguration(backend))
        let count = 500
        let ids = try await withRunning(producer) { producer in
            var ids: [KafkaProducerMessageID] = []
            for index in 0..<count {
                ids.append(try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "m\(index)", partition: 0)))
            }
            try await producer.flush(timeout: .seconds(30))
            return ids
        }
        var delivered: [KafkaProducerMessageID: Int64] = [:]
        for await event in events {
            guard case .delivered(let report) = event else {
                Issue.record("Unexpected event \(event)")
                continue
            }
            delivered[report.messageID] = report.offset
        }
        #expect(Set(delivered.keys) == Set(ids))
        #expect(Set(delivered.values) == Set(0..<Int64(count)))
    }

    @Test("A read-ahead buffer far smaller than the topic pauses and resumes fetching, losing, repeating and reordering nothing",
          arguments: TestBackend.allCases)
    func smallReadAheadBuffer(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("readahead", partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for index in 0..<600 {
                try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "\(index)", partition: index % 2))
            }
            try await producer.flush()
        }
        var configuration = consumerConfiguration(backend, group: uniqueName("g"), topics: [topic])
        configuration.maxBufferedMessages = 4
        let consumer = try KafkaConsumer(configuration: configuration)
        let handledCount = Shared(0)
        // What the buffer held: the most at any handling, and at each handling that held on until fetching paused.
        let mostBuffered = Shared(0), bufferedWhenPaused = Shared<[Int]>([])
        let handled = try await handle(consumer, count: 600) { message in
            let count = handledCount.withLock { $0 += 1; return $0 }
            let buffered = consumer.core.machine.withLock { $0.bufferedCount }
            mostBuffered.withLock { $0 = max($0, buffered) }
            // The first handling and the 300th hold on until the fetcher has filled the buffer, the point where it
            // must stop: the 300th finds it full again only if fetching went on after the first pause.
            guard count == 1 || count == 300 else { return }
            try await waitUntil("the read-ahead buffer full at handling \(count)") {
                consumer.core.machine.withLock { $0.room == (0, 0) }
            }
            bufferedWhenPaused.withLock { $0.append(consumer.core.machine.withLock { $0.bufferedCount }) }
        }
        #expect(bufferedWhenPaused.withLock { $0 } == [4, 4], "fetching stopped at the bound, twice")
        #expect(mostBuffered.withLock { $0 } <= 4, "never more than maxBufferedMessages read ahead")
        for partition in 0..<2 {
            let values = handled.filter { $0.partition == partition }.compactMap { $0.valueString.flatMap(Int.init) }
            #expect(values == Array(stride(from: partition, to: 600, by: 2)), "partition \(partition)")
        }
    }

    @Test("Messages fetched together stay whole when most are dropped, after close, and when read from many tasks at once",
          arguments: TestBackend.allCases)
    func messagesOutliveTheirBatch(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("batch-lifetime")
        let producer = try KafkaProducer(configuration: producerConfiguration(backend))
        try await withRunning(producer) { producer in
            for index in 0..<300 {
                let headers: KafkaHeaders = [KafkaHeader(key: "index", value: "\(index)"), KafkaHeader(key: "twice", value: "\(index * 2)")]
                try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "k\(index)", value: "v\(index)", headers: headers, partition: 0))
            }
            try await producer.flush()
        }
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic]))
        // Keep every seventh message only; the consumer is closed once consume returns.
        let kept = try await consume(consumer, count: 300).filter { $0.offset % 7 == 0 }
        #expect(kept.count == 43)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for message in kept.shuffled() {
                        let index = Int(message.offset)
                        #expect(message.keyString == "k\(index)")
                        #expect(message.valueString == "v\(index)")
                        #expect(message.headers.map(\.key) == ["index", "twice"])
                        #expect(message.headers.lastValue(forKey: "twice") == Array("\(index * 2)".utf8))
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
