import Foundation
import InMemoryLogging
import Logging
import MetricsTestKit
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// The dimensions of a series of `label`, as the library records them: the conventions' dimensions, the server on
/// librdkafka (its first bootstrap server), the operation's type on `messaging.client.operation.duration`, and the
/// unit in a `unit` dimension (the default).
func dimensions(
    _ backend: TestBackend,
    _ label: String,
    _ operation: String,
    topic: String,
    partition: String? = "0",
    group: String? = nil,
    error: String? = nil
) -> [(String, String)] {
    var result = [("messaging.system", "kafka"), ("messaging.operation.name", operation), ("messaging.destination.name", topic)]
    if let partition { result.append(("messaging.destination.partition.id", partition)) }
    if let group { result.append(("messaging.consumer.group.name", group)) }
    if let error { result.append(("error.type", error)) }
    if backend == .librdkafka, let server = KafkaTestCluster.shared.bootstrapServerList.first, let colon = server.lastIndex(of: ":") {
        result.append(("server.address", String(server[..<colon])))
        result.append(("server.port", String(server[server.index(after: colon)...])))
    }
    if label == "messaging.client.operation.duration" { result.append(("messaging.operation.type", operation == "commit" ? "settle" : operation)) }
    result.append(("unit", label.hasSuffix(".duration") ? "s" : "{message}"))
    return result
}

@Suite("Messaging metrics (swift-metrics, OTel names) on both backends")
struct MetricsTests {
    @Test("Sends, consumed messages and handler calls are counted and timed with the convention's dimensions", arguments: TestBackend.allCases)
    func sendConsumeProcess(backend: TestBackend) async throws {
        let metrics = TestMetrics()
        let topic = try await backend.newTopic("metered")
        let group = uniqueName("g")
        var producerConfiguration = producerConfiguration(backend)
        producerConfiguration.metrics = KafkaMetricsConfiguration(factory: metrics)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration)) { producer in
            for index in 0..<3 { try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)")) }
        }
        var consumerConfiguration = consumerConfiguration(backend, group: group, topics: [topic])
        consumerConfiguration.metrics = KafkaMetricsConfiguration(factory: metrics)
        try await handle(try KafkaConsumer(configuration: consumerConfiguration), count: 3)

        #expect(try metrics.expectCounter("messaging.client.sent.messages", dimensions(backend, "messaging.client.sent.messages", "send", topic: topic)).totalValue == 3)
        let sendDurations = try metrics.expectTimer("messaging.client.operation.duration", dimensions(backend, "messaging.client.operation.duration", "send", topic: topic)).values
        #expect(sendDurations.count == 3 && sendDurations.allSatisfy { $0 > 0 })
        #expect(try metrics.expectCounter("messaging.client.consumed.messages", dimensions(backend, "messaging.client.consumed.messages", "receive", topic: topic, group: group)).totalValue == 3)
        #expect(try metrics.expectTimer("messaging.process.duration", dimensions(backend, "messaging.process.duration", "process", topic: topic, group: group)).values.count == 3)
    }

    @Test("A failed send is timed with error.type, and counted as sent only if it was sent; a failed handler call is timed with error.type", arguments: TestBackend.allCases)
    func failures(backend: TestBackend) async throws {
        struct PaymentDeclined: Error {}
        let metrics = TestMetrics()
        let topic = try await backend.newTopic("failing")
        var producerConfiguration = producerConfiguration(backend, properties: ["message.timeout.ms": "2000"])
        producerConfiguration.metrics = KafkaMetricsConfiguration(factory: metrics)
        let failure = try await withRunning(try KafkaProducer(configuration: producerConfiguration)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "ok"))
            // Partition 7 of a one-partition topic does not exist.
            return await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "lost", partition: 7))
            }
        }
        let error = try #require(failure)
        let errorType = error.rdKafkaName ?? error.code.description
        let failedSent = dimensions(backend, "messaging.client.sent.messages", "send", topic: topic, partition: "7", error: errorType)
        let failedDimensions = dimensions(backend, "messaging.client.operation.duration", "send", topic: topic, partition: "7", error: errorType)
        #expect(try metrics.expectTimer("messaging.client.operation.duration", failedDimensions).values.count == 1)
        // librdkafka refuses a record for a missing partition before sending it: not a sent message. The file queue
        // takes it and fails it when it writes: sent, and failed.
        let countedAsSent = (try? metrics.expectCounter("messaging.client.sent.messages", failedSent).totalValue) ?? 0
        #expect(countedAsSent == (backend == .fileQueue ? 1 : 0))
        #expect(try metrics.expectCounter("messaging.client.sent.messages", dimensions(backend, "messaging.client.sent.messages", "send", topic: topic)).totalValue == 1)

        let group = uniqueName("g")
        var consumerConfiguration = consumerConfiguration(backend, group: group, topics: [topic])
        consumerConfiguration.metrics = KafkaMetricsConfiguration(factory: metrics)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration)
        await #expect(throws: PaymentDeclined.self) {
            try await withDeadline("failing handler") {
                try await consumer.run { _ in throw PaymentDeclined() }
            }
        }
        #expect(try metrics.expectTimer("messaging.process.duration", dimensions(backend, "messaging.process.duration", "process", topic: topic, group: group, error: "TracedKafkaTests.MetricsTests.PaymentDeclined")).values.count == 1)
    }

    @Test("Metrics switched off record nothing")
    func disabled() async throws {
        let metrics = TestMetrics()
        let topic = try await TestBackend.fileQueue.newTopic("quiet")
        var configuration = producerConfiguration(TestBackend.fileQueue)
        configuration.metrics = KafkaMetricsConfiguration(isEnabled: false, factory: metrics)
        _ = try await withRunning(try KafkaProducer(configuration: configuration)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "x"))
        }
        #expect(metrics.counters.isEmpty && metrics.timers.isEmpty)
    }

    @Test("Past maxDestinations, new topics are counted under _OTHER (bounded cardinality)")
    func boundedCardinality() async throws {
        let metrics = TestMetrics()
        var topics: [String] = []
        for _ in 0..<3 { topics.append(try await TestBackend.fileQueue.newTopic("many")) }
        var configuration = producerConfiguration(TestBackend.fileQueue)
        configuration.metrics = KafkaMetricsConfiguration(factory: metrics, maxDestinations: 2)
        try await withRunning(try KafkaProducer(configuration: configuration)) { [topics] producer in
            for topic in topics { try await producer.send(KafkaProducerRecord(topic: topic, value: "x")) }
        }
        let destinations = Set(metrics.counters(label: "messaging.client.sent.messages").compactMap { counter in
            counter.dimensions.first { $0.0 == "messaging.destination.name" }?.1
        })
        #expect(destinations == [topics[0], topics[1], "_OTHER"])
    }

    @Test("librdkafka's statistics feed the queue-depth, consumer-lag and client-total gauges, one series per client")
    func statisticsGauges() async throws {
        let metrics = TestMetrics()
        let topic = try await TestBackend.librdkafka.newTopic("lag")
        var producerConfiguration = producerConfiguration(TestBackend.librdkafka)
        producerConfiguration.metrics = KafkaMetricsConfiguration(factory: metrics, statisticsInterval: .milliseconds(100))
        try await withRunning(try KafkaProducer(configuration: producerConfiguration)) { producer in
            for index in 0..<10 { try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)")) }
            try await withDeadline("queue-depth gauge") {
                // Statistics after the ten sends: the queue-depth gauge, and the messages-sent total counting them.
                while metrics.recorders(label: "tracedkafka.producer.queued.messages").isEmpty
                    || !metrics.recorders(label: "tracedkafka.producer.messages.sent").contains(where: { ($0.values.last ?? 0) >= 10 })
                {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        // consumer_lag is measured from the committed offset: commit after each handled message, quickly.
        var consumerConfiguration = consumerConfiguration(TestBackend.librdkafka, group: uniqueName("g"), topics: [topic])
        consumerConfiguration.metrics = KafkaMetricsConfiguration(factory: metrics, statisticsInterval: .milliseconds(100))
        let consumer = try KafkaConsumer(configuration: consumerConfiguration)
        let released = Shared(false)
        let lag = try await withDeadline("consumer-lag gauge") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Four of ten are handled; the fifth handler call holds on, so the committed offset stays at 4.
                group.addTask {
                    try await consumer.run { message in
                        while message.offset >= 4 && !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
                    }
                }
                while metrics.recorders(label: "tracedkafka.consumer.lag").first?.values.last != 6 {
                    try await Task.sleep(for: .milliseconds(50))
                }
                released.withLock { $0 = true }
                consumer.triggerGracefulShutdown()
                try await group.waitForAll()
                return metrics.recorders(label: "tracedkafka.consumer.lag").first
            }
        }
        #expect(lag?.dimensions.contains { $0 == ("messaging.destination.partition.id", "0") } == true)
        #expect(lag?.dimensions.contains { $0 == ("messaging.destination.name", topic) } == true)
        // One series per client: the consumer, made without a client id, is named consumer-N.
        #expect(lag?.dimensions.contains { $0.0 == "messaging.client.id" && $0.1.hasPrefix("consumer-") } == true)
        #expect(lag?.dimensions.contains { $0 == ("unit", "{message}") } == true)
        // The client totals swift-kafka-client also offers, one series per client, with their units.
        let requests = metrics.recorders(label: "tracedkafka.client.requests.sent")
        #expect(requests.contains { $0.dimensions.contains { $0.0 == "messaging.client.id" && $0.1.hasPrefix("producer-") } })
        #expect(requests.contains { $0.dimensions.contains { $0.0 == "messaging.client.id" && $0.1.hasPrefix("consumer-") } })
        #expect(requests.allSatisfy { $0.dimensions.contains { $0 == ("unit", "{request}") } && ($0.values.last ?? 0) > 0 })
        #expect(metrics.recorders(label: "tracedkafka.producer.messages.sent").contains { ($0.values.last ?? 0) >= 10 })
        #expect(metrics.recorders(label: "tracedkafka.consumer.messages.received").contains { ($0.values.last ?? 0) >= 1 })
        #expect(metrics.recorders(label: "tracedkafka.client.responses.size").allSatisfy { $0.dimensions.contains { $0 == ("unit", "By") } })
        let lagValue = lag?.values.contains(6)
        #expect(lagValue == true)
    }
}

@Suite("Log lines: client metadata, trace ids, librdkafka's own lines")
struct LoggingTests {
    @Test("The consumer's lines carry client id and group; lines inside a handler carry its process span's trace id", arguments: TestBackend.allCases)
    func clientMetadataAndTraceIDs(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        var handler = InMemoryLogHandler()
        handler.logLevel = .debug
        handler.metadataProvider = .tracedKafka()
        let captured = handler
        let logger = Logger(label: "test") { _ in captured }
        let topic = try await backend.newTopic("logged")
        let group = uniqueName("g")
        try await withTracer(tracer) {
            try await sendTraced(KafkaProducerRecord(topic: topic, value: "x"), on: backend)
            var configuration = consumerConfiguration(backend, group: group, topics: [topic])
            configuration.clientID = "billing-1"
            let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
            try await handle(consumer, count: 1) { _ in logger.info("charging") }
        }
        let process = try span(tracer, "process \(topic)")
        let charging = try #require(handler.entries.first { $0.message == "charging" })
        #expect(charging.metadata["trace_id"] == "\(process.traceID)")
        #expect(charging.metadata["span_id"] == "\(process.spanID)")
        let library = handler.entries.filter { $0.metadata["messaging.client.id"] != nil }
        #expect(!library.isEmpty)
        #expect(library.allSatisfy { $0.metadata["messaging.client.id"] == "billing-1" && $0.metadata["messaging.consumer.group.name"] == "\(group)" })
    }

    @Test("Outside a span, or with a tracer that writes no traceparent, the provider adds nothing")
    func noSpanNoIDs() throws {
        var handler = InMemoryLogHandler()
        handler.metadataProvider = .tracedKafka(tracer: W3CRecordingTracer())
        let captured = handler
        Logger(label: "test") { _ in captured }.info("plain")
        let plain = try #require(handler.entries.first { $0.message == "plain" })
        #expect(plain.metadata["trace_id"] == nil)

        var noOp = InMemoryLogHandler()
        noOp.metadataProvider = .tracedKafka(tracer: NoOpTracer())
        let capturedNoOp = noOp
        let logger = Logger(label: "test") { _ in capturedNoOp }
        let span = W3CRecordingTracer().startSpan("request", context: .topLevel, ofKind: .server)
        InstrumentationContext.withValue(span.context) { logger.info("inside") }
        span.end()
        let inside = try #require(noOp.entries.first { $0.message == "inside" })
        #expect(inside.metadata["trace_id"] == nil)
    }

    @Test("librdkafka's own lines reach swift-log at their level, with the client's metadata")
    func librdkafkaLines() async throws {
        let handler = InMemoryLogHandler()
        let logger = Logger(label: "test") { _ in handler }
        // Nothing listens on port 1: librdkafka logs its connection failures.
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: ["127.0.0.1:1"], clientID: "lonely"),
            logger: logger
        )
        try await withDeadline("a librdkafka error line") {
            while !handler.entries.contains(where: { $0.level == .error && $0.metadata["rdkafka.facility"] != nil }) {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        producer.triggerGracefulShutdown()
        let line = try #require(handler.entries.first { $0.metadata["rdkafka.facility"] != nil && $0.level == .error })
        #expect(line.metadata["messaging.client.id"] == "lonely")
        #expect("\(line.message)".contains("127.0.0.1:1"))
    }
}
