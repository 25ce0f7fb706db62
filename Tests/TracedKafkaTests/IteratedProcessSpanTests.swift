import MetricsTestKit
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// A loop over `consumer.messages` keeps the trace with one line: `consumer.process(message) { … }`.
@Suite("Process spans for messages read from the iterator")
struct IteratedProcessSpanTests {
    @Test(
        "consumer.process(message) handles an iterated message in its process span: a child of the send span, linked to it, the current context of the body",
        arguments: TestBackend.allCases
    )
    func processSpanInTheLoop(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let metrics = TestMetrics()
        let topic = try await backend.newTopic("iterated")
        try await sendTraced(KafkaProducerRecord(topic: topic, value: "a"), on: backend, tracing: KafkaTracingConfiguration(tracer: tracer))
        var configuration = consumerConfiguration(backend, group: uniqueName("g"), topics: [topic])
        configuration.tracing = KafkaTracingConfiguration(tracer: tracer)
        configuration.metrics = KafkaMetricsConfiguration(factory: metrics)
        let consumer = try KafkaConsumer(configuration: configuration)
        _ = try await consume(consumer, count: 1) { message in
            try await consumer.process(message) { _ in
                tracer.withSpan("charge", context: InstrumentationContext.current ?? .topLevel) { _ in }
            }
        }
        let send = try span(tracer, "send \(topic)")
        let process = try span(tracer, "process \(topic)")
        let charge = try span(tracer, "charge")
        #expect(process.kind == .consumer)
        #expect(process.isChild(of: send) && process.links(to: send))
        #expect(charge.isChild(of: process), "the body's work is the process span's child")
        #expect(metrics.timers.contains { $0.label == "messaging.process.duration" })
    }

    @Test("Without consumer.process the loop makes no process span", arguments: TestBackend.allCases)
    func noSpanWithoutProcess(backend: TestBackend) async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("iterated-plain")
        try await sendTraced(KafkaProducerRecord(topic: topic, value: "a"), on: backend, tracing: KafkaTracingConfiguration(tracer: tracer))
        let consumer = try tracedConsumer(backend, topics: [topic], tracing: KafkaTracingConfiguration(tracer: tracer))
        let messages = try await consume(consumer, count: 1)
        #expect(tracer.spans(named: "process \(topic)").isEmpty)
        #expect(messages.first?.traceContext != nil, "the producer's context is still on the message")
    }

    @Test("A body that throws marks its process span failed, with error.type, and the error reaches the loop", arguments: TestBackend.allCases)
    func failingBody(backend: TestBackend) async throws {
        struct Declined: Error {}
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("iterated-failing")
        try await sendTraced(KafkaProducerRecord(topic: topic, value: "a"), on: backend, tracing: KafkaTracingConfiguration(tracer: tracer))
        let consumer = try tracedConsumer(backend, topics: [topic], tracing: KafkaTracingConfiguration(tracer: tracer))
        await #expect(throws: Declined.self) {
            _ = try await consume(consumer, count: 1) { message in
                try await consumer.process(message) { _ in throw Declined() }
            }
        }
        let process = try span(tracer, "process \(topic)")
        #expect(process.status?.code == .error)
        #expect(process.string("error.type") == "TracedKafkaTests.IteratedProcessSpanTests.Declined")
    }
}
