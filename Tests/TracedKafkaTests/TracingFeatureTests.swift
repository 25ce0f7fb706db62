import Foundation
import MetricsTestKit
import Testing
import Tracing
@testable import TracedKafka
import TracedKafkaTesting

/// Commit spans, poll spans, attribute hooks, untraced topics and header patterns, on both backends.
@Suite("Tracing features: commit and poll spans, hooks, untraced topics, header patterns")
struct TracingFeatureTests {
    func consumer(
        _ backend: TestBackend,
        topic: String,
        commitMode: KafkaConsumerConfiguration.CommitMode = .manual,
        tracing: KafkaTracingConfiguration,
        metrics: TestMetrics? = nil
    ) throws -> KafkaConsumer {
        var configuration = consumerConfiguration(backend, group: uniqueName("g"), topics: [topic], commitMode: commitMode)
        configuration.tracing = tracing
        if let metrics { configuration.metrics = KafkaMetricsConfiguration(factory: metrics) }
        return try KafkaConsumer(configuration: configuration)
    }

    /// A new topic holding one record sent with `tracer`.
    func topicWithOneRecord(_ backend: TestBackend, _ prefix: String, tracer: W3CRecordingTracer) async throws -> String {
        let topic = try await backend.newTopic(prefix)
        try await sendTraced(KafkaProducerRecord(topic: topic, value: "a"), on: backend, tracing: KafkaTracingConfiguration(tracer: tracer))
        return topic
    }

    /// How many commits `tracedkafka.consumer.commits` counted, of one origin or all.
    func countedCommits(_ metrics: TestMetrics, origin: String? = nil) -> Int64 {
        metrics.counters
            .filter { counter in
                counter.label == "tracedkafka.consumer.commits"
                    && (origin.map { origin in counter.dimensions.contains { $0 == ("tracedkafka.commit.origin", origin) } } ?? true)
            }
            .reduce(0) { $0 + $1.totalValue }
    }

    @Test("A commit inside a handler runs in a commit span, child of the process span; a failed one records its error", arguments: TestBackend.allCases)
    func commitSpans(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let metrics = TestMetrics()
        let topic = try await topicWithOneRecord(backend, "commit-span", tracer: tracer)
        let consumer = try consumer(backend, topic: topic, tracing: KafkaTracingConfiguration(tracer: tracer), metrics: metrics)
        let failure = Shared<KafkaError?>(nil)
        try await handle(consumer, count: 1) { message in
            try await consumer.commit(message)
            // Partition 7 of a one-partition topic does not exist.
            do {
                try await consumer.commit(offsets: [KafkaTopicPartitionOffset(topic: topic, partition: 7, offset: 1)])
            } catch let error as KafkaError {
                failure.withLock { $0 = error }
            }
        }
        let error = try #require(failure.withLock { $0 })
        #expect(error.code == .unknownPartition)
        let process = try span(tracer, "process \(topic)")
        let commits = tracer.spans(named: "commit \(topic)")
        try #require(commits.count == 2)
        let good = try #require(commits.first { $0.string("messaging.destination.partition.id") == "0" })
        #expect(good.isChild(of: process) && good.kind == .client)
        #expect(good.string("messaging.operation.type") == "settle")
        #expect(good.string("messaging.operation.name") == "commit")
        #expect(good.int("messaging.kafka.offset") == 0, "the committed record's offset, not the next one to read")
        #expect(good.status?.code != .error)
        let bad = try #require(commits.first { $0.string("messaging.destination.partition.id") == "7" })
        #expect(bad.status?.code == .error)
        #expect(bad.string("error.type") == (error.rdKafkaName ?? "unknownPartition"))
        #expect(countedCommits(metrics, origin: "application") == 2)
        #expect(metrics.timers.contains { $0.label == "messaging.client.operation.duration" && $0.dimensions.contains { $0 == ("messaging.operation.name", "commit") } })
    }

    @Test("Commit spans can be switched off; the consumer's own commits make none but are counted", arguments: TestBackend.allCases)
    func noCommitSpans(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let metrics = TestMetrics()
        let topic = try await topicWithOneRecord(backend, "commit-off", tracer: tracer)
        let off = try consumer(backend, topic: topic, tracing: KafkaTracingConfiguration(tracer: tracer, commitSpans: false))
        try await handle(off, count: 1) { message in try await off.commit(message) }
        let own = try consumer(
            backend, topic: topic, commitMode: .afterHandled(interval: .milliseconds(50)),
            tracing: KafkaTracingConfiguration(tracer: tracer), metrics: metrics
        )
        try await handle(own, count: 1)
        #expect(tracer.spans(named: "commit \(topic)").isEmpty)
        #expect(tracer.spans(named: "process \(topic)").count == 2)
        #expect(countedCommits(metrics, origin: "consumer") >= 1)
        #expect(countedCommits(metrics, origin: "application") == 0)
    }

    @Test("Poll spans only when opted in: one per message handed out, linked to its send span, none for the empty end", arguments: TestBackend.allCases)
    func pollSpans(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("poll-span")
        try await sendTraced(
            KafkaProducerRecord(topic: topic, value: "a"), KafkaProducerRecord(topic: topic, value: "b"),
            on: backend, tracing: KafkaTracingConfiguration(tracer: tracer)
        )
        let plain = try consumer(backend, topic: topic, tracing: KafkaTracingConfiguration(tracer: tracer))
        _ = try await consume(plain, count: 2)
        #expect(tracer.spans(named: "poll \(topic)").isEmpty)

        let polling = try consumer(backend, topic: topic, tracing: KafkaTracingConfiguration(tracer: tracer, pollSpans: true))
        // After the second message the loop asks once more; that call ends with the shutdown, handing out nothing.
        _ = try await consume(polling, count: 2)
        let polls = tracer.spans(named: "poll \(topic)")
        #expect(polls.count == 2)
        let sends = tracer.spans(named: "send \(topic)")
        for poll in polls {
            #expect(poll.kind == .client)
            #expect(poll.string("messaging.operation.type") == "receive")
            #expect(poll.links.count == 1)
            #expect(sends.contains { poll.links(to: $0) })
        }

        let batches = try consumer(backend, topic: topic, tracing: KafkaTracingConfiguration(tracer: tracer, pollSpans: true))
        tracer.reset()
        let seen = Shared(0)
        try await withDeadline("two messages in batches", .seconds(60)) {
            try await batches.runBatches { messages in
                if seen.withLock({ $0 += messages.count; return $0 }) >= 2 { batches.triggerGracefulShutdown() }
            }
        }
        let batchPolls = tracer.spans(named: "poll \(topic)")
        #expect(batchPolls.count >= 1)
        #expect(batchPolls.reduce(0) { $0 + $1.links.count } == 2)
    }

    @Test("Attribute hooks add the application's attributes to send and process spans; the body size is opt-in", arguments: TestBackend.allCases)
    func attributeHooks(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("hooks")
        var tracing = KafkaTracingConfiguration(tracer: tracer, recordsBodySize: true)
        tracing.sendAttributes = { record, attributes in attributes["app.value.length"] = record.value?.count ?? 0 }
        tracing.processAttributes = { message, attributes in attributes["app.tenant"] = message.keyString ?? "none" }
        let producer = try tracedProducer(backend, tracing: tracing)
        _ = try await withRunning(producer) { try await $0.send(KafkaProducerRecord(topic: topic, key: "acme", value: "12345")) }
        try await handle(try consumer(backend, topic: topic, tracing: tracing), count: 1)
        #expect(try span(tracer, "send \(topic)").int("app.value.length") == 5)
        #expect(try span(tracer, "process \(topic)").string("app.tenant") == "acme")
        #expect(try span(tracer, "send \(topic)").int("messaging.message.body.size") == 5)
        #expect(try span(tracer, "process \(topic)").int("messaging.message.body.size") == 5)
    }

    @Test("An untraced topic makes no spans, and its messages carry and hand on the incoming context", arguments: TestBackend.allCases)
    func untracedTopic(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("untraced")
        let tracing = KafkaTracingConfiguration(tracer: tracer, pollSpans: true, untracedTopics: [topic])
        let producer = try tracedProducer(backend, tracing: tracing)
        _ = try await withRunning(producer) { producer in
            try await tracer.withSpan("checkout", context: .topLevel) { _ in
                try await producer.send(KafkaProducerRecord(topic: topic, value: "quiet"))
            }
        }
        let messages = try await handle(try consumer(backend, topic: topic, tracing: tracing), count: 1) { message in
            try await consumerWork(tracer)
        }
        let checkout = try span(tracer, "checkout")
        let charge = try span(tracer, "charge card")
        #expect(tracer.spans(named: "send \(topic)").isEmpty)
        #expect(tracer.spans(named: "process \(topic)").isEmpty)
        #expect(tracer.spans(named: "poll \(topic)").isEmpty)
        #expect(messages[0].headers.values(forKey: "traceparent") == [Array("00-\(checkout.traceID)-\(checkout.spanID)-01".utf8)])
        #expect(charge.isChild(of: checkout))
    }

    @Test("A record to an untraced topic loses its stale trace headers as on a traced one: one traceparent, no foreign tracestate", arguments: TestBackend.allCases)
    func untracedTopicHeaderHygiene(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("untraced-stale")
        let tracing = KafkaTracingConfiguration(tracer: tracer, untracedTopics: [topic])
        let producer = try tracedProducer(backend, tracing: tracing)
        let stale: KafkaHeaders = [
            KafkaHeader(key: "traceparent", value: "00-not-valid-at-all-01"),
            KafkaHeader(key: "tracestate", value: "vendor=" + String(repeating: "x", count: 1_200)),
            KafkaHeader(key: "tenant", value: "acme"),
        ]
        _ = try await withRunning(producer) { producer in
            try await tracer.withSpan("checkout", context: .topLevel) { _ in
                try await producer.send(KafkaProducerRecord(topic: topic, value: "quiet", headers: stale))
            }
        }
        let messages = try await handle(try consumer(backend, topic: topic, tracing: tracing), count: 1)
        let checkout = try span(tracer, "checkout")
        #expect(messages[0].headers.values(forKey: "traceparent") == [Array("00-\(checkout.traceID)-\(checkout.spanID)-01".utf8)])
        #expect(messages[0].headers.values(forKey: "tracestate").isEmpty)
        #expect(messages[0].headers.values(forKey: "tenant") == [Array("acme".utf8)])
    }

    @Test("Captured headers are bounded in number per span: names first, then patterns")
    func capturedHeaderCount() throws {
        let tracer = W3CRecordingTracer()
        let tracing = KafkaTracingConfiguration(tracer: tracer, capturedHeaders: ["*", "wanted"], maxCapturedHeaders: 5)
        // The named header first: a pattern walks from the last header, so only names going first keep it.
        var headers: KafkaHeaders = [KafkaHeader(key: "wanted", value: "yes")]
        headers.append(contentsOf: (0..<10_000).map { KafkaHeader(key: "h\($0)", value: "v") })
        var attributes = SpanAttributes()
        KafkaTracingAttributes.captureHeaders(tracing, from: headers, into: &attributes)
        var captured: [String] = []
        attributes.forEach { name, _ in captured.append(name) }
        #expect(captured.count == 5)
        #expect(attributes["messaging.header.wanted"]?.toSpanAttribute() == .string("yes"), "a name is never crowded out")
    }

    /// The application's work inside a handler, traced by the test's tracer.
    func consumerWork(_ tracer: W3CRecordingTracer) async throws {
        tracer.withSpan("charge card") { _ in }
    }

    @Test("Headers are captured by name or by * pattern, later values winning")
    func headerPatterns() async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await newTopic("patterns")
        let tracing = KafkaTracingConfiguration(tracer: tracer, capturedHeaders: ["x-*", "*-id", "exact"])
        let producer = try tracedProducer(tracing: tracing)
        let headers: KafkaHeaders = [
            KafkaHeader(key: "x-tenant", value: "acme"), KafkaHeader(key: "x-region", value: "eu"),
            KafkaHeader(key: "order-id", value: "41"), KafkaHeader(key: "order-id", value: "42"),
            KafkaHeader(key: "exact", value: "yes"), KafkaHeader(key: "exactly", value: "no"), KafkaHeader(key: "X-Upper", value: "no"),
        ]
        _ = try await withRunning(producer) { try await $0.send(KafkaProducerRecord(topic: topic, value: "v", headers: headers)) }
        let send = try span(tracer, "send \(topic)")
        #expect(send.string("messaging.header.x-tenant") == "acme")
        #expect(send.string("messaging.header.x-region") == "eu")
        #expect(send.string("messaging.header.order-id") == "42")
        #expect(send.string("messaging.header.exact") == "yes")
        #expect(send.attributes.get("messaging.header.exactly") == nil)
        #expect(send.attributes.get("messaging.header.X-Upper") == nil)
        #expect(send.attributes.get("messaging.header.traceparent") == nil)
    }

    @Test("Sends alternating between topics get each topic's span name and destination (the per-topic templates)")
    func alternatingTopics() async throws {
        let tracer = W3CRecordingTracer()
        let a = try await TestBackend.librdkafka.newTopic("alt-a"), b = try await TestBackend.librdkafka.newTopic("alt-b")
        try await sendTraced(
            KafkaProducerRecord(topic: a, value: "1"), KafkaProducerRecord(topic: b, value: "2"),
            KafkaProducerRecord(topic: a, value: "3"), KafkaProducerRecord(topic: b, value: "4"),
            tracing: KafkaTracingConfiguration(tracer: tracer)
        )
        let sends = tracer.finishedSpans.filter { $0.operationName.hasPrefix("send ") }
        #expect(sends.map(\.operationName) == ["send \(a)", "send \(b)", "send \(a)", "send \(b)"])
        #expect(sends.map { $0.attributes.get("messaging.destination.name") } == [a, b, a, b].map { SpanAttribute.string($0) })
    }

    @Test("One producer follows withTracer scopes that alternate between two tracers, send by send, and sends outside them untraced")
    func alternatingTracerScopes() async throws {
        let first = W3CRecordingTracer(), second = W3CRecordingTracer()
        let topic = try await TestBackend.fileQueue.newTopic("alt-tracers")
        let producer = try tracedProducer(.fileQueue)
        try await withRunning(producer) { producer in
            for index in 0..<6 {
                let record = KafkaProducerRecord(topic: topic, value: "\(index)")
                _ = try await withTracer(index.isMultiple(of: 2) ? first : second) { try await producer.send(record) }
            }
            // No scope and nothing bootstrapped: the no-op tracer, and no trace header.
            _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "untraced"))
        }
        #expect(first.spans(named: "send \(topic)").count == 3)
        #expect(second.spans(named: "send \(topic)").count == 3)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(.fileQueue, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: 7)
        let traced = messages.filter { $0.headers.lastValue(forKey: "traceparent") != nil }.compactMap(\.valueString)
        #expect(traced == ["0", "1", "2", "3", "4", "5"])
    }

    @Test("A tracer that is a value smaller than a pointer is used as any other, and replaces a header of a key it writes",
          arguments: TestBackend.allCases)
    func tinyValueTracer(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("tiny-tracer")
        let producer = try tracedProducer(backend)
        try await withRunning(producer) { producer in
            for value in [true, false] {
                // A header of a key the tracer writes (though it never reads it) is replaced, not repeated.
                let headers: KafkaHeaders = [KafkaHeader(key: "x-tiny", value: "stale"), KafkaHeader(key: "x-own", value: "kept")]
                let record = KafkaProducerRecord(topic: topic, value: "\(value)", headers: headers)
                _ = try await withTracer(TinyTracer(mark: value)) { try await producer.send(record) }
            }
        }
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: 2)
        #expect(messages.map { $0.headers.map(\.key) } == [["x-own", "x-tiny"], ["x-own", "x-tiny"]])
        #expect(messages.map { $0.headers.lastValue(forKey: "x-tiny").flatMap { String(decoding: $0, as: UTF8.self) } } == ["true", "false"])
    }
}

/// A tracer that is a one-byte value: it writes its mark into a header, so a test sees which tracer a send used.
private struct TinyTracer: Tracer {
    let mark: Bool

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> NoOpTracer.NoOpSpan {
        NoOpTracer.NoOpSpan(context: context())
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        injector.inject("\(mark)", forKey: "x-tiny", into: &carrier)
    }

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {}
}
