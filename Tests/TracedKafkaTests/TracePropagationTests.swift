import Foundation
import InMemoryTracing
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

@Suite("Trace propagation across the Kafka hop")
struct TracePropagationTests {
    @Test("One trace runs from a root span through send to process: child, link, W3C header bytes, attributes", arguments: TestBackend.allCases)
    func sendThenProcess(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("orders")
        let group = uniqueName("billing")
        try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            try await withRunning(producer) { producer in
                try await withSpan("checkout") { _ in
                    _ = try await producer.send(KafkaProducerRecord(topic: topic, key: "customer-1", value: "espresso"))
                }
            }
            let consumer = try tracedConsumer(backend, topics: [topic], group: group)
            let messages = try await handle(consumer, count: 1) { _ in
                withSpan("charge card") { _ in }
            }
            let root = try span(tracer, "checkout")
            let send = try span(tracer, "send \(topic)")
            let process = try span(tracer, "process \(topic)")
            let charge = try span(tracer, "charge card")

            #expect(root.isRoot)
            #expect(send.isChild(of: root) && send.kind == .producer)
            #expect(process.isChild(of: send) && process.kind == .consumer)
            #expect(process.links(to: send))
            #expect(charge.isChild(of: process))
            #expect(messages[0].headers.values(forKey: "traceparent") == [Array("00-\(send.traceID)-\(send.spanID)-01".utf8)])
            #expect(messages[0].keyString == "customer-1" && messages[0].valueString == "espresso")

            #expect(send.string("messaging.system") == "kafka")
            #expect(send.string("messaging.operation.name") == "send")
            #expect(send.string("messaging.operation.type") == "send")
            #expect(send.string("messaging.destination.name") == topic)
            #expect(send.string("messaging.destination.partition.id") == "0")
            #expect(send.int("messaging.kafka.offset") == 0)
            #expect(send.string("messaging.kafka.message.key") == "customer-1")
            #expect(send.string("messaging.client.id") == "checkout")
            switch backend {
            case .librdkafka:
                let address = try #require(send.string("server.address"))
                if ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] == nil { #expect(address == "127.0.0.1") }
            case .fileQueue:
                #expect(send.attributes.get("server.address") == nil)
            }
            #expect(send.attributes.get("messaging.kafka.message.tombstone") == nil)
            #expect(process.string("messaging.operation.type") == "process")
            #expect(process.string("messaging.consumer.group.name") == group)
            #expect(process.string("messaging.destination.partition.id") == "0")
            #expect(process.int("messaging.kafka.offset") == 0)
            #expect(process.attributes.get("messaging.message.body.size") == nil, "opt-in in the conventions: off by default")
            #expect(send.attributes.get("messaging.message.body.size") == nil)
        }
    }

    @Test("With propagatesContext off, spans are still made, but the producer writes no trace header into its records and the consumer reads none from them", arguments: TestBackend.allCases)
    func propagationOff(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let unmarked = try await backend.newTopic("unpropagated")
        let marked = try await backend.newTopic("propagated")
        let off = KafkaTracingConfiguration(propagatesContext: false)
        let tenant: KafkaHeaders = [KafkaHeader(key: "tenant", value: "acme")]
        let (unmarkedMessage, markedMessage) = try await withTracer(tracer) {
            let producer = try tracedProducer(backend, tracing: off)
            try await withRunning(producer) { producer in
                try await withSpan("checkout") { _ in
                    _ = try await producer.send(KafkaProducerRecord(topic: unmarked, value: "x", headers: tenant))
                }
            }
            // A record that does carry its send span's context, for a consumer that does not read it.
            try await withSpan("request") { _ in try await sendTraced(KafkaProducerRecord(topic: marked, value: "y"), on: backend) }
            let unmarkedMessages = try await handle(try tracedConsumer(backend, topics: [unmarked], tracing: .disabled), count: 1)
            let markedMessages = try await handle(try tracedConsumer(backend, topics: [marked], tracing: off), count: 1) { message in
                #expect(message.traceContext == nil)
            }
            return (unmarkedMessages[0], markedMessages[0])
        }
        let unmarkedSend = try span(tracer, "send \(unmarked)")
        #expect(unmarkedSend.isChild(of: try span(tracer, "checkout")), "the send span is made as with propagation on")
        #expect(unmarkedMessage.headers == tenant, "no trace header was written")
        let send = try span(tracer, "send \(marked)")
        let process = try span(tracer, "process \(marked)")
        #expect(markedMessage.headers.values(forKey: "traceparent") == [Array("00-\(send.traceID)-\(send.spanID)-01".utf8)])
        #expect(process.isRoot && !process.sharesTrace(with: send), "the process span is made, but not from the record's context")
        #expect(process.links.isEmpty)
    }

    @Test("A consume-transform-produce chain over three topics is one trace with the right parents", arguments: TestBackend.allCases)
    func chainOverThreeTopics(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        var hops: [String] = []
        for hop in 0..<3 { hops.append(try await backend.newTopic("hop\(hop)")) }
        let topics = hops
        try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            try await withRunning(producer) { producer in
                try await withSpan("request") { _ in
                    _ = try await producer.send(KafkaProducerRecord(topic: topics[0], value: "start"))
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for hop in 0..<2 {
                        group.addTask {
                            try await handle(try tracedConsumer(backend, topics: [topics[hop]]), count: 1) { message in
                                _ = try await producer.send(KafkaProducerRecord(topic: topics[hop + 1], value: message.value))
                            }
                        }
                    }
                    group.addTask { try await handle(try tracedConsumer(backend, topics: [topics[2]]), count: 1) }
                    try await group.waitForAll()
                }
            }
        }
        let request = try span(tracer, "request")
        var parent = request
        for topic in topics {
            let send = try span(tracer, "send \(topic)")
            let process = try span(tracer, "process \(topic)")
            #expect(send.isChild(of: parent), "send \(topic)")
            #expect(process.isChild(of: send), "process \(topic)")
            #expect(process.links(to: send))
            parent = process
        }
        #expect(Set(tracer.finishedSpans.map(\.traceID)) == [request.traceID])
        #expect(tracer.finishedSpans.count == 7)
    }

    @Test("Link-only mode starts a new trace per hop, joined to the producer by a link", arguments: TestBackend.allCases)
    func linkOnly(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("linkonly")
        try await withTracer(tracer) {
            try await sendTraced(KafkaProducerRecord(topic: topic, value: "x"), on: backend)
            let tracing = KafkaTracingConfiguration(consumerParent: .linkOnly)
            try await handle(try tracedConsumer(backend, topics: [topic], tracing: tracing), count: 1)
        }
        let send = try span(tracer, "send \(topic)")
        let process = try span(tracer, "process \(topic)")
        #expect(process.isRoot)
        #expect(!process.sharesTrace(with: send))
        #expect(process.links(to: send))
    }

    @Test("A batch handler runs in one process span with one link per message, carrying its partition and offset", arguments: TestBackend.allCases)
    func batchSpan(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("batch", partitions: 3)
        let count = 12
        try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            try await withRunning(producer) { producer in
                for index in 0..<count {
                    // Each record in a trace of its own.
                    try await withSpan("request \(index)") { _ in
                        _ = try await producer.send(KafkaProducerRecord(topic: topic, key: "k\(index)", value: "\(index)"))
                    }
                }
            }
            let consumer = try tracedConsumer(backend, topics: [topic])
            let seen = Shared(0)
            try await withDeadline("batches") {
                try await consumer.runBatches(maxMessages: 100) { batch in
                    if seen.withLock({ $0 += batch.count; return $0 }) == count { consumer.triggerGracefulShutdown() }
                }
            }
        }
        let batches = tracer.spans(named: "process \(topic)")
        let sends = tracer.spans(named: "send \(topic)")
        #expect(sends.count == count)
        #expect(batches.map { Int($0.int("messaging.batch.message_count") ?? 0) }.reduce(0, +) == count)
        let links = batches.flatMap(\.links)
        #expect(links.count == count)
        let partitions = Set(sends.compactMap { $0.string("messaging.destination.partition.id") })
        #expect(partitions.count > 1, "the keys spread the records over the partitions: \(partitions)")
        for send in sends {
            let link = try #require(links.first { $0.spanID == send.spanID && $0.traceID == send.traceID })
            let partition = try #require(send.string("messaging.destination.partition.id"))
            #expect(link.attributes.get("messaging.destination.partition.id") == .string(partition))
            #expect(link.attributes.get("messaging.kafka.offset") == .int64(send.int("messaging.kafka.offset") ?? -1))
        }
        #expect(batches.allSatisfy { $0.kind == .consumer && $0.isRoot })
    }

    @Test("Re-sending a consumed record leaves exactly one traceparent, links the old context, parents on the handler", arguments: TestBackend.allCases)
    func resendKeepsOneTraceparent(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let source = try await backend.newTopic("source")
        let target = try await backend.newTopic("target")
        let forwarded = try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            return try await withRunning(producer) { producer in
                _ = try await producer.send(KafkaProducerRecord(topic: source, value: "original"))
                try await handle(try tracedConsumer(backend, topics: [source]), count: 1) { message in
                    var record = KafkaProducerRecord(topic: target, key: message.key, value: message.value, headers: message.headers)
                    record.headers.append(key: "traceparent", value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                    _ = try await producer.send(record)
                }
                return try await handle(try tracedConsumer(backend, topics: [target]), count: 1)
            }
        }
        let original = try span(tracer, "send \(source)")
        let process = try span(tracer, "process \(source)")
        let resend = try span(tracer, "send \(target)")
        #expect(forwarded[0].headers.values(forKey: "traceparent") == [Array("00-\(resend.traceID)-\(resend.spanID)-01".utf8)])
        #expect(resend.isChild(of: process))
        // The record carried two traceparents: the last, the one appended, is the context it carried.
        #expect(!resend.links(to: original))
        #expect(resend.links.map(\.spanID) == ["b7ad6b7169203331"])
    }

    @Test("A forwarded record that carries one context gets exactly one traceparent and a link to the old context", arguments: TestBackend.allCases)
    func forwardLinksOldContext(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("forward")
        let old = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let received = try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            try await withRunning(producer) { producer in
                let headers: KafkaHeaders = [KafkaHeader(key: "traceparent", value: old), KafkaHeader(key: "tracestate", value: "vendor=old")]
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "x", headers: headers))
            }
            return try await handle(try tracedConsumer(backend, topics: [topic]), count: 1)
        }
        let send = try span(tracer, "send \(topic)")
        #expect(send.isRoot)
        #expect(send.links.map(\.spanID) == ["b7ad6b7169203331"])
        #expect(send.links.map(\.traceID) == ["0af7651916cd43dd8448eb211c80319c"])
        #expect(received[0].headers.values(forKey: "traceparent") == [Array("00-\(send.traceID)-\(send.spanID)-01".utf8)])
        #expect(received[0].headers.values(forKey: "tracestate").isEmpty)
    }

    @Test("An unsampled parent stays unsampled downstream while its context keeps propagating", arguments: TestBackend.allCases)
    func unsampledStaysUnsampled(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer(sampler: .never)
        let first = try await backend.newTopic("unsampled1")
        let second = try await backend.newTopic("unsampled2")
        let (upstream, downstream) = try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            return try await withRunning(producer) { producer in
                try await withSpan("request") { _ in
                    _ = try await producer.send(KafkaProducerRecord(topic: first, value: "x"))
                }
                let upstream = try await handle(try tracedConsumer(backend, topics: [first]), count: 1) { message in
                    _ = try await producer.send(KafkaProducerRecord(topic: second, value: message.value))
                }
                return (upstream, try await handle(try tracedConsumer(backend, topics: [second]), count: 1))
            }
        }
        let upstreamParent = try #require(upstream[0].headers.lastValue(forKey: "traceparent").flatMap { String(validating: $0, as: UTF8.self) })
        let downstreamParent = try #require(downstream[0].headers.lastValue(forKey: "traceparent").flatMap { String(validating: $0, as: UTF8.self) })
        #expect(upstreamParent.hasSuffix("-00"))
        #expect(downstreamParent.hasSuffix("-00"))
        // Same trace id across both hops: the context propagated even though nothing was sampled.
        #expect(upstreamParent.split(separator: "-")[1] == downstreamParent.split(separator: "-")[1])
        #expect(upstreamParent != downstreamParent)
        #expect(tracer.finishedSpans.isEmpty)
    }

    @Test("A throwing handler marks its span failed and leaves its offset uncommitted", arguments: TestBackend.allCases)
    func throwingHandler(backend: TestBackend) async throws {
        struct PaymentDeclined: Error {}
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("declined")
        let group = uniqueName("g")
        try await withTracer(tracer) {
            let producer = try tracedProducer(backend)
            try await withRunning(producer) { producer in
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "first"))
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "second"))
            }
            await #expect(throws: PaymentDeclined.self) {
                try await withDeadline("failing handler") {
                    try await tracedConsumer(backend, topics: [topic], group: group).run { message in
                        if message.offset == 1 { throw PaymentDeclined() }
                    }
                }
            }
            // Offset 0 was handled and committed; offset 1 was not: a new member of the group starts there.
            let again = try await handle(try tracedConsumer(backend, topics: [topic], group: group), count: 1)
            #expect(again.map(\.offset) == [1])
        }
        let failed = try #require(tracer.spans(named: "process \(topic)").first { $0.int("messaging.kafka.offset") == 1 && $0.status?.code == .error })
        #expect(failed.string("error.type") == "TracedKafkaTests.TracePropagationTests.PaymentDeclined")
        #expect(failed.status?.message == "PaymentDeclined()")
        #expect(failed.errors.count == 1)
    }

    @Test("The tracer bound with withTracer is the one used, per operation", arguments: TestBackend.allCases)
    func withTracerIsHonoured(backend: TestBackend) async throws {
        let producerTracer = W3CRecordingTracer()
        let consumerTracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("withtracer")
        let producer = try tracedProducer(backend)
        try await withRunning(producer) { producer in
            try await withTracer(producerTracer) {
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "x"))
            }
        }
        _ = try await withTracer(consumerTracer) {
            try await handle(try tracedConsumer(backend, topics: [topic]), count: 1)
        }
        let send = try span(producerTracer, "send \(topic)")
        let process = try span(consumerTracer, "process \(topic)")
        #expect(producerTracer.spans(named: "process \(topic)").isEmpty)
        #expect(consumerTracer.spans(named: "send \(topic)").isEmpty)
        #expect(process.isChild(of: send))
    }

    @Test("swift-distributed-tracing's InMemoryTracer works across the hop too", arguments: TestBackend.allCases)
    func inMemoryTracer(backend: TestBackend) async throws {
        let tracer = InMemoryTracer()
        let topic = try await backend.newTopic("inmemory")
        try await withTracer(tracer) {
            try await sendTraced(KafkaProducerRecord(topic: topic, value: "x"), on: backend)
            try await handle(try tracedConsumer(backend, topics: [topic]), count: 1)
        }
        let send = try #require(tracer.finishedSpans.first { $0.operationName == "send \(topic)" })
        let process = try #require(tracer.finishedSpans.first { $0.operationName == "process \(topic)" })
        #expect(send.kind == .producer && process.kind == .consumer)
        #expect(process.traceID == send.traceID)
        #expect(process.parentSpanID == send.spanID)
        #expect(process.links.first?.context.inMemorySpanContext?.spanID == send.spanID)
    }

    @Test("Chosen headers are captured as span attributes; tracing off touches neither spans nor headers", arguments: TestBackend.allCases)
    func headerCaptureAndOff(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("capture")
        let quiet = try await backend.newTopic("quiet")
        let headers: KafkaHeaders = [KafkaHeader(key: "source", value: "web"), KafkaHeader(key: "secret", value: "hunter2")]
        let received = try await withTracer(tracer) {
            let producer = try tracedProducer(backend, tracing: KafkaTracingConfiguration(capturedHeaders: ["source"]))
            let silent = try tracedProducer(backend, tracing: .disabled)
            try await withRunning(producer) { producer in
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "x", headers: headers))
            }
            try await withRunning(silent) { silent in
                _ = try await silent.send(KafkaProducerRecord(topic: quiet, value: "x", headers: headers))
            }
            return try await handle(try tracedConsumer(backend, topics: [quiet], tracing: .disabled), count: 1)
        }
        let send = try span(tracer, "send \(topic)")
        #expect(send.string("messaging.header.source") == "web")
        #expect(send.attributes.get("messaging.header.secret") == nil)
        #expect(tracer.spans(named: "send \(quiet)").isEmpty)
        #expect(tracer.spans(named: "process \(quiet)").isEmpty)
        #expect(received[0].headers == headers)
    }
}

@Suite("Re-sent records and delivery-report settings")
struct ResendEdgeTests {
    @Test("A re-sent record with a broken traceparent keeps no stale tracestate", arguments: TestBackend.allCases)
    func staleTraceStateDropped(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("stale")
        let headers: KafkaHeaders = [KafkaHeader(key: "traceparent", value: "garbage"), KafkaHeader(key: "tracestate", value: "vendor=stale")]
        let received = try await withTracer(tracer) {
            try await sendTraced(KafkaProducerRecord(topic: topic, value: "x", headers: headers), on: backend)
            return try await handle(try tracedConsumer(backend, topics: [topic]), count: 1)
        }
        let send = try span(tracer, "send \(topic)")
        #expect(received[0].headers.values(forKey: "tracestate").isEmpty)
        #expect(received[0].headers.values(forKey: "traceparent") == [Array("00-\(send.traceID)-\(send.spanID)-01".utf8)])
    }

    @Test("An awaited send completes even when raw properties ask for error-only delivery reports")
    func errorOnlyReportsAreOverridden() async throws {
        let topic = try await newTopic("reports")
        let producer = try KafkaProducer(
            configuration: producerConfiguration(KafkaTestCluster.shared, properties: ["delivery.report.only.error": "true"]))
        let report = try await withRunning(producer) { producer in
            try await withDeadline("send with error-only reports", .seconds(30)) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "x"))
            }
        }
        #expect(report.offset == 0)
    }
}

@Suite("Records forwarded by peers that append their trace headers")
struct ForwardedRecordTests {
    /// A Python OpenTelemetry forwarder (kafka-python, aiokafka, confluent-kafka instrumentations) re-sends a consumed
    /// record with its headers and appends its own `traceparent`: the original context first, the forwarder's last.
    static let original = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    static let forwarder = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// The process span of a record sent with `headers` as a forwarder left them (no tracing on the producer: the
    /// headers go as they are), handled by a traced consumer.
    static func processSpan(
        of headers: KafkaHeaders,
        on backend: TestBackend,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RecordedSpan {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("forwarded")
        try await sendTraced(KafkaProducerRecord(topic: topic, value: "x", headers: headers), on: backend, tracing: .disabled)
        _ = try await withTracer(tracer) { try await handle(try tracedConsumer(backend, topics: [topic]), count: 1) }
        return try span(tracer, "process \(topic)", sourceLocation: sourceLocation)
    }

    @Test("A record with the original's traceparent and tracestate, then the forwarder's traceparent, continues the forwarder's trace", arguments: TestBackend.allCases)
    func appendedTraceparent(_ backend: TestBackend) async throws {
        let process = try await Self.processSpan(of: [
            KafkaHeader(key: "traceparent", value: Self.original),
            KafkaHeader(key: "tracestate", value: "python=1"),
            KafkaHeader(key: "traceparent", value: Self.forwarder),
        ], on: backend)
        #expect(process.traceID == "4bf92f3577b34da6a3ce929d0e0e4736", "the forwarder's trace")
        #expect(process.parentSpanID == "00f067aa0ba902b7")
        #expect(process.links.map(\.spanID) == ["00f067aa0ba902b7"])
    }

    @Test("When the last traceparent is invalid, the record is processed under a new root, not under an earlier value", arguments: TestBackend.allCases)
    func invalidLastTraceparent(_ backend: TestBackend) async throws {
        let process = try await Self.processSpan(of: [
            KafkaHeader(key: "traceparent", value: Self.original),
            KafkaHeader(key: "traceparent", value: "00-not-a-valid-context-01"),
        ], on: backend)
        #expect(process.isRoot)
        #expect(process.links.isEmpty)
        #expect(process.traceID != "0af7651916cd43dd8448eb211c80319c")
    }
}
