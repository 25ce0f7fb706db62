import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting
import W3CTraceContext

/// The proof that TracedKafka's headers are the real W3C thing: Python's OpenTelemetry (confluent-kafka instrumented
/// by opentelemetry-instrumentation-confluent-kafka, in `integration/.venv`) and kcat exchange traced records with a
/// Swift producer and consumer through the running broker.
@Suite("Cross-language trace propagation (Python OpenTelemetry, kcat)")
struct CrossLanguageTests {
    /// One span as `python/otel_kafka.py` prints it.
    struct PythonSpan: Decodable, Sendable {
        struct Link: Decodable, Sendable {
            var trace_id: String
            var span_id: String
        }
        var name: String
        var kind: String
        var trace_id: String
        var span_id: String
        var parent_span_id: String?
        var trace_state: String
        var links: [Link]
    }

    /// What OpenTelemetry's propagators extracted from one record's headers.
    struct Extracted: Decodable, Sendable {
        var valid: Bool
        var trace_id: String
        var span_id: String
        var sampled: Bool
        var trace_state: String
        var baggage: [String: String]
    }

    /// One record the Python consumer received.
    struct PythonMessage: Decodable, Sendable {
        var value: String?
        var extracted: Extracted
    }

    /// The Python script's output.
    struct PythonOutput: Decodable, Sendable {
        var spans: [PythonSpan]
        var messages: [PythonMessage]?
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../python/otel_kafka.py").standardizedFileURL.path

    /// Runs `otel_kafka.py` with the virtualenv's Python and decodes what it printed; any failure names the script's
    /// stderr.
    static func python(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> PythonOutput {
        let interpreter = try requiredEnvironment("INTEGRATION_PYTHON", sourceLocation: sourceLocation)
        let output = try await runProcess(interpreter, [script] + arguments + ["--bootstrap", Integration.bootstrapServers])
        try #require(output.status == .exited(0), "otel_kafka.py \(arguments.joined(separator: " ")) failed (\(output.status)):\n\(output.stderr)", sourceLocation: sourceLocation)
        do {
            return try JSONDecoder().decode(PythonOutput.self, from: Data(output.stdout.utf8))
        } catch {
            Issue.record("otel_kafka.py printed no valid JSON (\(error)):\n\(output.stdout)\n\(output.stderr)", sourceLocation: sourceLocation)
            throw error
        }
    }

    @Test("Swift producer → Python OpenTelemetry consumer: OTel extracts the Swift send span; its spans carry the Swift trace id")
    func swiftToPython() async throws {
        let topic = try await Integration.topic("to-python")
        let tracer = W3CRecordingTracer()
        // A remote parent with a tracestate, as an upstream W3C service would send it.
        var upstream = InstrumentationContext.topLevel
        let upstreamHeaders: KafkaHeaders = [
            KafkaHeader(key: "traceparent", value: "00-\(TraceID.random())-\(SpanID.random())-01"),
            KafkaHeader(key: "tracestate", value: "swift=t61rcWkgMzE,congo=lZWRzIHRoNhcm5hbCBwbGVhc3VyZS4"),
        ]
        tracer.extract(upstreamHeaders, into: &upstream, using: KafkaHeadersExtractor())
        try #require(upstream.w3cTraceContext != nil)
        let parent = upstream
        try await withTracer(tracer) {
            let producer = try KafkaProducer(configuration: producerConfiguration())
            try await withRunning(producer) { producer in
                try await withSpan("checkout") { _ in
                    _ = try await producer.send(KafkaProducerRecord(topic: topic, key: "a", value: "plain", partition: 0))
                }
                try await withSpan("forward", context: parent) { _ in
                    let baggage: KafkaHeaders = [KafkaHeader(key: "baggage", value: "tenant=acme,user=42")]
                    _ = try await producer.send(KafkaProducerRecord(topic: topic, key: "b", value: "with-state", headers: baggage, partition: 0))
                }
            }
        }
        let sends = tracer.spans(named: "send \(topic)")
        try #require(sends.count == 2)
        let checkout = try span(tracer, "checkout"), forward = try span(tracer, "forward")
        let plainSend = try #require(sends.first { $0.isChild(of: checkout) })
        let stateSend = try #require(sends.first { $0.isChild(of: forward) })

        let output = try await Self.python(["consume", "--topic", topic, "--group", Integration.group("python"), "--count", "2"])
        let messages = try #require(output.messages)
        try #require(messages.count == 2)
        for (send, value) in [(plainSend, "plain"), (stateSend, "with-state")] {
            let message = try #require(messages.first { $0.value == value })
            // OpenTelemetry's own W3C propagator parsed our traceparent into exactly our send span's ids.
            #expect(message.extracted.valid, "OTel rejected the traceparent of '\(value)'")
            #expect(message.extracted.trace_id == send.traceID)
            #expect(message.extracted.span_id == send.spanID)
            #expect(message.extracted.sampled)
            // A Python span started in the extracted context: the Swift trace id, the Swift send span as parent.
            let handle = try #require(output.spans.first { $0.name == "handle \(topic)" && $0.trace_id == send.traceID }, "no Python handle span in trace \(send.traceID)")
            #expect(handle.parent_span_id == send.spanID)
            // The instrumentation's own consumer span links to the Swift send span.
            let process = output.spans.filter { $0.name == "\(topic) process" && $0.kind == "CONSUMER" }
            #expect(process.contains { $0.links.contains { $0.trace_id == send.traceID && $0.span_id == send.spanID } },
                    "no '\(topic) process' span links to the Swift send span of '\(value)'")
        }
        let stateMessage = try #require(messages.first { $0.value == "with-state" })
        #expect(stateMessage.extracted.trace_state == "swift=t61rcWkgMzE,congo=lZWRzIHRoNhcm5hbCBwbGVhc3VyZS4")
        #expect(stateMessage.extracted.baggage == ["tenant": "acme", "user": "42"])
        #expect(messages.first { $0.value == "plain" }?.extracted.trace_state == "")
    }

    @Test("A Swift transaction → Python OpenTelemetry consumer: OTel extracts the send span, child of the transaction span")
    func transactionToPython() async throws {
        let topic = try await Integration.topic("tx-to-python", partitions: 1)
        let tracer = W3CRecordingTracer()
        var configuration = producerConfiguration()
        configuration.transactionalID = "it-\(Integration.runID)-to-python"
        configuration.tracing.tracer = tracer
        let producer = try KafkaProducer(configuration: configuration)
        _ = try await withRunning(producer) { producer in
            try await tracer.withSpan("checkout", context: .topLevel) { _ in
                try await producer.withTransaction { transaction in
                    try await transaction.send(KafkaProducerRecord(topic: topic, key: "a", value: "in a transaction"))
                }
            }
        }
        let checkout = try span(tracer, "checkout"), transaction = try span(tracer, "transaction"), send = try span(tracer, "send \(topic)")
        #expect(transaction.isChild(of: checkout) && send.isChild(of: transaction))
        #expect(transaction.string("tracedkafka.transaction.outcome") == "committed")

        // confluent-kafka reads read_committed, as librdkafka does by default: it gets the record once the transaction committed.
        let output = try await Self.python(["consume", "--topic", topic, "--group", Integration.group("python-tx"), "--count", "1"])
        let message = try #require(output.messages?.first)
        #expect(message.value == "in a transaction")
        #expect(message.extracted.valid && message.extracted.sampled)
        #expect(message.extracted.trace_id == send.traceID)
        #expect(message.extracted.span_id == send.spanID)
    }

    @Test("Python OpenTelemetry producer → Swift consumer: the Swift process span is a child of the Python send span and links to it")
    func pythonToSwift() async throws {
        let topic = try await Integration.topic("from-python")
        let output = try await Self.python(["produce", "--topic", topic, "--count", "1"])
        let pythonSend = try #require(output.spans.first { $0.kind == "PRODUCER" }, "the Python producer recorded no PRODUCER span: \(output.spans.map(\.name))")
        let pythonRequest = try #require(output.spans.first { $0.name == "py-request" })
        #expect(pythonSend.parent_span_id == pythonRequest.span_id)

        let tracer = W3CRecordingTracer()
        let messages = try await withTracer(tracer) {
            let consumer = try KafkaConsumer(configuration: consumerConfiguration(group: Integration.group("from-python"), topics: [topic]))
            return try await handle(consumer, count: 1) { message in
                #expect(message.traceContext?.w3cTraceContext?.spanID.description == pythonSend.span_id)
            }
        }
        let process = try span(tracer, "process \(topic)")
        #expect(process.traceID == pythonSend.trace_id)
        #expect(process.parentSpanID == pythonSend.span_id)
        #expect(process.links.contains { $0.traceID == pythonSend.trace_id && $0.spanID == pythonSend.span_id })
        #expect(messages[0].valueString == "from-python-0")
        #expect(messages[0].headers.lastValue(forKey: "baggage") == Array("origin=python".utf8), "OTel's baggage header arrives as written")
    }

    /// Produces one record per header set with kcat, in order, to partition 0 of `topic`.
    static func kcat(_ topic: String, _ headerSets: [[(String, String)]]) async throws {
        let kcat = ProcessInfo.processInfo.environment["INTEGRATION_KCAT"] ?? "/usr/bin/kcat"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("it-kcat-\(Integration.runID)-\(topic)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, headers) in headerSets.enumerated() {
            let file = directory.appendingPathComponent("record-\(index)")
            try Data("kcat-\(index)".utf8).write(to: file)
            let arguments = ["-P", "-b", Integration.bootstrapServers, "-t", topic, "-p", "0"]
                + headers.flatMap { ["-H", "\($0.0)=\($0.1)"] } + [file.path]
            let output = try await runProcess(kcat, arguments)
            try #require(output.status == .exited(0), "kcat \(arguments.joined(separator: " ")) failed: \(output.stderr)")
        }
    }

    @Test("kcat with hand-written valid headers: Swift and Python OpenTelemetry read the same parent, tracestate and baggage")
    func kcatValidHeaders() async throws {
        let topic = try await Integration.topic("kcat-valid")
        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736", parentID = "00f067aa0ba902b7"
        try await Self.kcat(topic, [
            [("traceparent", "00-\(traceID)-\(parentID)-01"), ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
             ("baggage", "userId=alice,serverNode=DF%2028")],
            // Sampled flag off: the context propagates, but nothing is recorded.
            [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")],
        ])
        let tracer = W3CRecordingTracer()
        let messages = try await withTracer(tracer) {
            let consumer = try KafkaConsumer(configuration: consumerConfiguration(group: Integration.group("kcat"), topics: [topic]))
            return try await handle(consumer, count: 2)
        }
        try #require(messages.count == 2)
        let sampled = messages[0].traceContext?.w3cTraceContext
        #expect(sampled?.traceID.description == traceID && sampled?.spanID.description == parentID)
        // swift-w3c-trace-context prints members joined by ", " (optional whitespace the W3C grammar allows).
        let members = sampled?.traceStateHeaderValue?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(members == ["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"])
        #expect(messages[0].headers.lastValue(forKey: "baggage") == Array("userId=alice,serverNode=DF%2028".utf8))
        let unsampled = messages[1].traceContext?.w3cTraceContext
        #expect(unsampled?.traceID.description == "0af7651916cd43dd8448eb211c80319c")
        #expect(unsampled.map { !$0.flags.contains(.sampled) } == true)

        let processes = tracer.spans(named: "process \(topic)")
        #expect(processes.count == 1, "only the sampled record's span is recorded")
        let process = try #require(processes.first)
        #expect(process.traceID == traceID && process.parentSpanID == parentID)
        #expect(process.links.contains { $0.traceID == traceID && $0.spanID == parentID })

        let python = try await Self.python(["consume", "--topic", topic, "--group", Integration.group("kcat-python"), "--count", "2"])
        let extracted = try #require(python.messages?.first { $0.value == "kcat-0" }?.extracted)
        #expect(extracted.valid && extracted.trace_id == traceID && extracted.span_id == parentID)
        #expect(extracted.trace_state == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        #expect(extracted.baggage == ["userId": "alice", "serverNode": "DF 28"])
    }

    /// Hand-written traceparents that break the W3C grammar.
    static let invalid: [(String, String)] = [
        ("garbage", "not-a-traceparent"),
        ("uppercase hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"),
        ("version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ("all-zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        ("one character short", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"),
        ("non-hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"),
        ("extra field on version 00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
    ]

    @Test("kcat with hand-written invalid traceparents: each record is processed under a new root span, and OTel agrees they are invalid")
    func kcatInvalidHeaders() async throws {
        let topic = try await Integration.topic("kcat-invalid")
        try await Self.kcat(topic, Self.invalid.map { [("traceparent", $0.1), ("tracestate", "rojo=1"), ("baggage", "k=v")] })
        let tracer = W3CRecordingTracer()
        let messages = try await withTracer(tracer) {
            let consumer = try KafkaConsumer(configuration: consumerConfiguration(group: Integration.group("kcat-invalid"), topics: [topic]))
            return try await handle(consumer, count: Self.invalid.count)
        }
        #expect(messages.map(\.offset) == Array(0..<Int64(Self.invalid.count)))
        let processes = tracer.spans(named: "process \(topic)")
        #expect(processes.count == Self.invalid.count)
        for (index, (name, _)) in Self.invalid.enumerated() {
            #expect(messages[index].traceContext == nil, "\(name)")
            let process = try #require(processes.first { $0.int("messaging.kafka.offset") == Int64(index) }, "\(name)")
            #expect(process.isRoot && process.links.isEmpty, "\(name)")
            #expect(process.traceID != "4bf92f3577b34da6a3ce929d0e0e4736", "\(name)")
        }
        let python = try await Self.python(["consume", "--topic", topic, "--group", Integration.group("kcat-invalid-python"), "--count", "\(Self.invalid.count)"])
        let pythonMessages = try #require(python.messages)
        #expect(pythonMessages.count == Self.invalid.count)
        for message in pythonMessages {
            #expect(!message.extracted.valid, "OpenTelemetry accepted the traceparent of \(message.value ?? "?")")
        }
    }
}
