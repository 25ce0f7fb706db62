import MetricsTestKit
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// Every span and metric the library makes, checked against OpenTelemetry's semantic conventions v1.44.0
/// (model/messaging/registry.yaml, kafka.yaml, spans.yaml, metrics.yaml of open-telemetry/semantic-conventions at
/// tag v1.44.0), so that a change that drifts from them fails here.
@Suite("Telemetry against OpenTelemetry semantic conventions v1.44.0")
struct ConventionsTests {
    /// An attribute's value type in the conventions.
    enum ValueType: Equatable {
        case string, int, bool

        init?(_ attribute: SpanAttribute) {
            switch attribute {
            case .string: self = .string
            case .int32, .int64: self = .int
            case .bool: self = .bool
            default: return nil
            }
        }
    }

    /// Every attribute key the library may set and its type: the conventions' (v1.44.0 registry: messaging.*,
    /// messaging.kafka.*, server.*, error.type) and the library's own (`tracedkafka.*`). Deprecated names
    /// (`messaging.operation`, `messaging.kafka.message.offset`, `messaging.kafka.consumer.group`,
    /// `messaging.kafka.destination.partition`, `messaging.client_id`, `messaging.destination_publish.*`) are not in
    /// it, so a span that set one fails.
    static let attributeTypes: [String: ValueType] = [
        "messaging.system": .string,
        "messaging.operation.name": .string,
        "messaging.operation.type": .string,
        "messaging.destination.name": .string,
        "messaging.destination.partition.id": .string,
        "messaging.consumer.group.name": .string,
        "messaging.client.id": .string,
        "messaging.batch.message_count": .int,
        "messaging.message.body.size": .int,
        "messaging.kafka.message.key": .string,
        "messaging.kafka.offset": .int,
        "messaging.kafka.message.tombstone": .bool,
        "messaging.kafka.cluster.id": .string,
        "server.address": .string,
        "server.port": .int,
        "error.type": .string,
        "tracedkafka.transaction.id": .string,
        "tracedkafka.transaction.outcome": .string,
        "tracedkafka.commit.partition_count": .int,
    ]

    /// One kind of span: its name's first word, its kind, its `messaging.operation.type` (the conventions' span
    /// kind follows from it: send → PRODUCER, receive and settle → CLIENT, process → CONSUMER), and the attributes
    /// it must always have.
    struct SpanRule {
        var operation: String
        var kind: SpanKind
        var type: String?
        var required: [String]
    }

    static let spanRules: [SpanRule] = [
        SpanRule(operation: "send", kind: .producer, type: "send", required: [
            "messaging.system", "messaging.operation.name", "messaging.operation.type", "messaging.destination.name",
            "server.address", "server.port", "messaging.client.id",
        ]),
        SpanRule(operation: "process", kind: .consumer, type: "process", required: [
            "messaging.system", "messaging.operation.name", "messaging.operation.type", "messaging.destination.name",
            "messaging.consumer.group.name", "server.address", "server.port", "messaging.client.id",
        ]),
        SpanRule(operation: "poll", kind: .client, type: "receive", required: [
            "messaging.system", "messaging.operation.name", "messaging.operation.type", "messaging.destination.name",
            "messaging.consumer.group.name", "server.address", "server.port", "messaging.client.id",
        ]),
        SpanRule(operation: "commit", kind: .client, type: "settle", required: [
            "messaging.system", "messaging.operation.name", "messaging.operation.type", "messaging.destination.name",
            "messaging.consumer.group.name", "server.address", "server.port", "messaging.client.id",
        ]),
        // No transaction operation in the conventions: INTERNAL, the library's own attributes.
        SpanRule(operation: "transaction", kind: .internal, type: nil, required: [
            "messaging.system", "messaging.operation.name", "tracedkafka.transaction.id", "tracedkafka.transaction.outcome",
            "messaging.batch.message_count", "server.address", "messaging.client.id",
        ]),
    ]

    /// One metric: its instrument, unit, and the dimensions it must have and may have (v1.44.0 metrics.yaml).
    struct MetricRule {
        enum Instrument { case counter, timer }
        var label: String
        var instrument: Instrument
        var unit: String
        var required: Set<String>
        var optional: Set<String>
    }

    static let metricRules: [MetricRule] = {
        let destination: Set<String> = ["messaging.destination.name", "messaging.destination.partition.id", "messaging.consumer.group.name", "error.type", "server.port"]
        let base: Set<String> = ["messaging.system", "messaging.operation.name", "server.address", "unit"]
        return [
            MetricRule(label: "messaging.client.sent.messages", instrument: .counter, unit: "{message}", required: base, optional: destination),
            MetricRule(label: "messaging.client.consumed.messages", instrument: .counter, unit: "{message}", required: base, optional: destination),
            MetricRule(
                label: "messaging.client.operation.duration", instrument: .timer, unit: "s",
                required: base.union(["messaging.operation.type"]), optional: destination
            ),
            MetricRule(label: "messaging.process.duration", instrument: .timer, unit: "s", required: base, optional: destination),
            MetricRule(
                label: "tracedkafka.consumer.commits", instrument: .counter, unit: "{commit}",
                required: base.union(["tracedkafka.commit.origin"]), optional: destination
            ),
        ]
    }()

    @Test("Every span and metric (send, failed send, tombstone, process, batch, poll, commit, transaction) has the names, kinds, attributes, types and units of the conventions")
    func everySignal() async throws {
        let tracer = W3CRecordingTracer()
        let metrics = TestMetrics()
        let topic = try await TestBackend.librdkafka.newTopic("conventions")
        let tracing = KafkaTracingConfiguration(tracer: tracer, pollSpans: true)
        var producer = producerConfiguration(KafkaTestCluster.shared)
        producer.tracing = tracing
        producer.metrics = KafkaMetricsConfiguration(factory: metrics)
        try await withRunning(try KafkaProducer(configuration: producer)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, key: "order-1", value: "placed"))
            try await producer.send(KafkaProducerRecord(topic: topic, key: "order-2", value: nil))
            // Partition 7 of a one-partition topic does not exist.
            await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "lost", partition: 7))
            }
        }
        var transactional = producer
        transactional.transactionalID = uniqueName("tx")
        _ = try await withRunning(try KafkaProducer(configuration: transactional)) { producer in
            try await producer.withTransaction { transaction in
                try await transaction.send(KafkaProducerRecord(topic: topic, key: "order-3", value: "paid"))
            }
        }

        // Handled one by one (process, poll and commit spans), then in a batch, then through the iterator with process.
        func consumer() throws -> KafkaConsumer {
            var configuration = consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [topic], commitMode: .manual)
            configuration.tracing = tracing
            configuration.metrics = KafkaMetricsConfiguration(factory: metrics)
            return try KafkaConsumer(configuration: configuration)
        }
        let single = try consumer()
        _ = try await handle(single, count: 3) { message in try await single.commit(message) }
        let batches = try consumer()
        let seen = Shared(0)
        try await withDeadline("three messages in batches") {
            try await batches.runBatches { messages in
                if seen.withLock({ $0 += messages.count; return $0 }) >= 3 { batches.triggerGracefulShutdown() }
            }
        }
        let iterated = try consumer()
        _ = try await consume(iterated, count: 3) { message in try await iterated.process(message) { _ in } }

        let spans = tracer.finishedSpans
        for span in spans {
            let operation = String(span.operationName.split(separator: " ").first ?? "")
            let rule = try #require(Self.spanRules.first { $0.operation == operation }, "a span the table does not know: \(span.operationName)")
            #expect(span.kind == rule.kind, "\(span.operationName)")
            #expect(span.operationName == (operation == "transaction" ? "transaction" : "\(operation) \(topic)"))
            #expect(span.string("messaging.system") == "kafka")
            #expect(span.string("messaging.operation.name") == operation)
            #expect(span.string("messaging.operation.type") == rule.type, "\(span.operationName)")
            for key in rule.required { #expect(span.attributes[key] != nil, "\(span.operationName) lacks \(key)") }
            span.attributes.forEach { key, value in
                let expected = Self.attributeTypes[key]
                #expect(expected != nil, "\(span.operationName) sets \(key), which is neither the conventions' nor the library's own")
                #expect(expected == nil || ValueType(value) == expected, "\(span.operationName): \(key) is \(value)")
            }
            let failed = span.status?.code == .error
            #expect(failed == (span.attributes["error.type"] != nil), "\(span.operationName): error status if and only if error.type")
            // A single message's span names its offset; a batch's names its size.
            let count = span.int("messaging.batch.message_count")
            if ["send", "commit"].contains(operation) && !failed { #expect(span.int("messaging.kafka.offset") != nil) }
            if operation == "process" || operation == "poll" { #expect(count != nil || span.int("messaging.kafka.offset") != nil) }
            for link in span.links {
                link.attributes.forEach { key, value in
                    #expect(Self.attributeTypes[key] != nil && ValueType(value) == Self.attributeTypes[key], "link attribute \(key)")
                }
            }
        }
        // Each kind of span was made, and the kinds of record: a failed send, a tombstone, a batch.
        for rule in Self.spanRules { #expect(spans.contains { $0.operationName.hasPrefix(rule.operation) }, "no \(rule.operation) span") }
        let sends = spans.filter { $0.operationName == "send \(topic)" }
        #expect(sends.contains { $0.string("error.type") == "_UNKNOWN_PARTITION" || $0.string("error.type") == "UNKNOWN_TOPIC_OR_PART" })
        #expect(sends.contains { $0.attributes.get("messaging.kafka.message.tombstone") == .bool(true) })
        #expect(sends.contains { $0.string("messaging.kafka.message.key") == "order-1" })
        let processes = spans.filter { $0.operationName == "process \(topic)" }
        #expect(processes.contains { $0.attributes.get("messaging.kafka.message.tombstone") == .bool(true) })
        #expect(processes.contains { $0.int("messaging.batch.message_count") != nil })
        let polls = spans.filter { $0.operationName == "poll \(topic)" }
        #expect(polls.contains { $0.attributes.get("messaging.kafka.message.tombstone") == .bool(true) }, "a single tombstone's receive span")
        #expect(polls.contains { $0.string("messaging.kafka.message.key") == "order-1" }, "a single message's receive span has its key")

        for rule in Self.metricRules {
            let series: [(dimensions: [(String, String)], Void)]
            switch rule.instrument {
            case .counter: series = metrics.counters.filter { $0.label == rule.label }.map { ($0.dimensions, ()) }
            case .timer: series = metrics.timers.filter { $0.label == rule.label }.map { ($0.dimensions, ()) }
            }
            #expect(!series.isEmpty, "no \(rule.label)")
            for (dimensions, _) in series {
                let keys = Set(dimensions.map(\.0))
                #expect(rule.required.isSubset(of: keys), "\(rule.label) lacks \(rule.required.subtracting(keys))")
                #expect(keys.isSubset(of: rule.required.union(rule.optional)), "\(rule.label) has \(keys.subtracting(rule.required.union(rule.optional)))")
                #expect(dimensions.contains { $0 == ("unit", rule.unit) }, "\(rule.label)'s unit")
                #expect(dimensions.contains { $0 == ("messaging.system", "kafka") })
            }
        }
        let known = Set(Self.metricRules.map(\.label))
        let made = Set(metrics.counters.map(\.label) + metrics.timers.map(\.label))
        #expect(made.isSubset(of: known), "metrics the table does not know: \(made.subtracting(known))")
    }
}
