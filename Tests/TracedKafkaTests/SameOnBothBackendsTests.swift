import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

@Suite("Both backends keep and refuse the same things")
struct SameOnBothBackendsTests {
    @Test("A header key that is not UTF-8 reaches the handler and a forwarded record byte for byte", arguments: TestBackend.allCases)
    func nonUTF8HeaderKeyKept(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("rawkey")
        let forwarded = try await backend.newTopic("rawkey-fwd")
        let header = KafkaHeader(keyBytes: [0xFF, 0xFE], value: Array("x".utf8))
        #expect(!header.keyIsUTF8)
        _ = try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "v", headers: [header, KafkaHeader(key: "k", value: "y")]))
        }
        let first = try await handle(try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic])), count: 1)
        #expect(first[0].headers.map(\.keyBytes) == [[0xFF, 0xFE], Array("k".utf8)])
        #expect(first[0].headers[0].value == Array("x".utf8))
        _ = try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            try await producer.send(KafkaProducerRecord(topic: forwarded, value: "v", headers: first[0].headers))
        }
        let second = try await handle(try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [forwarded])), count: 1)
        #expect(second[0].headers == first[0].headers)
        #expect(second[0].headers[0].keyBytes == [0xFF, 0xFE])
    }

    @Test("A header key holding NUL, a record over maxMessageBytes and a topic Kafka refuses are refused at once", arguments: TestBackend.allCases)
    func badRecordsRefused(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("refuse")
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            let nul = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "v", headers: [KafkaHeader(key: "a\u{0}b", value: "x")]))
            }
            #expect(nul?.code == .invalidRecord)
            let large = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, key: [1], value: [UInt8](repeating: 7, count: 1_000_000)))
            }
            #expect(large?.code == .invalidRecord)
            #expect(large?.reason.contains("1000001 bytes") == true)
            // The limit itself is accepted, on both.
            let report = try await producer.send(KafkaProducerRecord(topic: topic, value: [UInt8](repeating: 7, count: 1_000_000)))
            #expect(report.offset == 0)
            for name in ["bad topic!", String(repeating: "x", count: 250), "..", "tab\tname"] {
                let error = await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerRecord(topic: name, value: "v")) }
                #expect(error?.code == .invalidRecord, "\(name)")
            }
            // Right after a send to a valid name, a name Swift's String calls equal to it (U+212A KELVIN SIGN is
            // canonically "K") but whose bytes differ is checked, and refused, all the same.
            let kelvin = "K" + topic
            _ = try await producer.send(KafkaProducerRecord(topic: kelvin, value: "v"))
            let lookalike = "\u{212A}" + topic
            #expect(lookalike == kelvin)
            let error = await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerRecord(topic: lookalike, value: "v")) }
            #expect(error?.code == .invalidRecord)
            // Each name is checked on its bytes, whatever was sent before: right after a send to a valid name, a
            // name of the same length that differs in its last character is refused, and the same bytes in a string
            // of their own are accepted. (Both are new strings: the test keeps `topic`, so none is changed in place.)
            _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "v"))
            var changed = topic
            changed.removeLast()
            changed.append("!")
            #expect(changed.utf8.count == topic.utf8.count)
            let changedError = await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerRecord(topic: changed, value: "v")) }
            #expect(changedError?.code == .invalidRecord)
            let copy = String(decoding: Array(topic.utf8), as: UTF8.self)
            #expect(try await producer.send(KafkaProducerRecord(topic: copy, value: "v")).offset == 2)
            #expect(try await producer.send(KafkaProducerRecord(topic: topic, value: "v")).offset == 3)
        }
        let consumerError = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: ["bad topic!"]))
        }
        #expect(consumerError?.code == .configuration)
    }

    @Test("Commits for partitions that do not exist are refused", arguments: TestBackend.allCases)
    func commitsForMissingPartitionsRefused(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("commit-missing", partitions: 2)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "v", partition: 0))
        }
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic], commitMode: .manual))
        let errors = Shared<[KafkaError?]>([])
        // Inside the handler, where a member commits: it has joined its group.
        try await handle(consumer, count: 1) { message in
            for offset in [
                KafkaTopicPartitionOffset(topic: topic, partition: -5, offset: 1),
                KafkaTopicPartitionOffset(topic: topic, partition: 99, offset: 1),
                KafkaTopicPartitionOffset(topic: topic, partition: 0, offset: -3),
            ] {
                do {
                    try await consumer.commit(offsets: [offset])
                    errors.withLock { $0.append(nil) }
                } catch {
                    errors.withLock { $0.append(error as? KafkaError) }
                }
            }
            try await consumer.commit(message)
        }
        let codes = errors.withLock { $0 }.map { $0?.code }
        #expect(codes == [.unknownPartition, .unknownPartition, .invalidOffset], "\(errors.withLock { $0 })")
    }

    @Test("A captured header is cut to maxCapturedHeaderLength, at a character boundary", arguments: TestBackend.allCases)
    func capturedHeaderCapped(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("capcap")
        let big = "é" + String(repeating: "a", count: 100_000)
        let tracing = KafkaTracingConfiguration(capturedHeaders: ["big", "small"], maxCapturedHeaderLength: 4)
        try await withTracer(tracer) {
            _ = try await withRunning(try tracedProducer(backend, tracing: tracing)) { producer in
                try await producer.send(KafkaProducerRecord(
                    topic: topic, value: "v", headers: [KafkaHeader(key: "big", value: big), KafkaHeader(key: "small", value: "éé")]
                ))
            }
            try await handle(try tracedConsumer(backend, topics: [topic], tracing: tracing), count: 1)
        }
        for name in ["send \(topic)", "process \(topic)"] {
            let span = try span(tracer, name)
            #expect(span.string("messaging.header.big") == "éaa")
            #expect(span.string("messaging.header.small") == "éé")
        }
    }

    @Test("tracestate and baggage whose separators carry tabs (W3C optional whitespace) are read, trimmed")
    func tabsInW3CLists() {
        let headers: KafkaHeaders = [
            KafkaHeader(key: "tracestate", value: "a=1\t,\tb=2"),
            KafkaHeader(key: "baggage", value: "user=42 ,\tregion=eu"),
            KafkaHeader(key: "other", value: "x\ty"),
        ]
        let extractor = KafkaHeadersExtractor()
        #expect(extractor.extract(key: "tracestate", from: headers) == "a=1,b=2")
        #expect(extractor.extract(key: "baggage", from: headers) == "user=42,region=eu")
        #expect(extractor.extract(key: "other", from: headers) == nil, "control characters stay refused elsewhere")
    }
}

@Suite("Event streams are bounded")
struct BoundedEventTests {
    @Test("An unread producer event stream keeps the newest events only and counts what it dropped", arguments: TestBackend.allCases)
    func unreadProducerEvents(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("unread")
        var configuration = producerConfiguration(backend)
        // Delivery reports in send order even when a request is retried on a loaded machine.
        configuration.idempotence = true
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration, maxBufferedEvents: 100)
        try await withRunning(producer) { producer in
            for index in 0..<3_000 { try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "\(index)")) }
            try await producer.flush()
        }
        #expect(producer.droppedEventCount == 2_900)
        var kept: [UInt64] = []
        for await event in events {
            guard case .delivered(let report) = event else { continue }
            kept.append(report.messageID.rawValue)
        }
        #expect(kept == Array(2_901...3_000), "the newest 100, nothing else waited")
    }

    @Test("A producer event stream that is being read loses no outcome: 1,000,000 enqueues, every outcome arrives", arguments: TestBackend.allCases)
    func readProducerEvents(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("read-all", partitions: 4)
        var configuration = producerConfiguration(backend)
        configuration.tracing = .disabled
        configuration.metrics = .disabled
        let count = 1_000_000
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration, maxBufferedEvents: 1_000)
        let read = Shared(0)
        let reader = Task { await countOutcomes(events) { read.withLock { $0 += 1 } } }
        let value: [UInt8] = [1, 2, 3, 4]
        try await withRunning(producer) { producer in
            // The reader reads from here on (before, the stream keeps only its newest events).
            try await producer.enqueue(KafkaProducerRecord(topic: topic, value: value))
            while read.withLock({ $0 }) == 0 { await Task.yield() }
            for _ in 1..<count { try await producer.enqueue(KafkaProducerRecord(topic: topic, value: value)) }
            try await producer.flush(timeout: .seconds(120))
        }
        let (delivered, failed) = await reader.value
        #expect(delivered == count)
        #expect(failed == 0)
        #expect(producer.droppedEventCount == 0)
    }
}
