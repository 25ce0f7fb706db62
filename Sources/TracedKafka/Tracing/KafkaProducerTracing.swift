import Tracing

/// The producer's tracing layer: one PRODUCER span per record, from send to delivery report.
///
/// Not API: visible to the benchmarks through `@_spi(Benchmarks) import TracedKafka`, so they time the very code a
/// send runs, and free to change.
@_spi(Benchmarks) public struct KafkaProducerTracing: Sendable {
    let configuration: KafkaTracingConfiguration
    let clientID: String?
    let server: KafkaServerAddress?
    /// Per topic, the name and the first attributes of its send spans.
    private let templates: TopicSpanTemplates

    init(configuration: KafkaTracingConfiguration, clientID: String?, server: KafkaServerAddress?) {
        self.configuration = configuration
        self.clientID = clientID
        self.server = server
        var attributes = SpanAttributes()
        attributes.set("messaging.system", value: .string("kafka"))
        attributes.set("messaging.operation.name", value: .string("send"))
        attributes.set("messaging.operation.type", value: .string("send"))
        if let clientID { attributes.set("messaging.client.id", value: .string(clientID)) }
        server?.apply(to: &attributes)
        templates = TopicSpanTemplates(operation: "send", attributes: attributes)
    }

    /// A recording send span and the attributes it gets when it ends.
    ///
    /// The attributes are handed to the span once, when it ends: a span's `updateAttributes` copies the whole
    /// dictionary (swift-distributed-tracing's default, which swift-otel keeps), so setting the delivery report's
    /// partition and offset on a span that already held the rest would copy them all. No sampler sees attributes at
    /// start anyway: swift-distributed-tracing's `startSpan` takes none.
    @_spi(Benchmarks) public struct SendSpan: Sendable {
        /// The span, in an object of its own: a span is an existential whose copies and destruction go through its
        /// type's value witnesses, while a send span is passed from the sender to the delivery ticket and taken out
        /// of it again.
        private final class Box: Sendable {
            let span: any Span
            init(_ span: any Span) { self.span = span }
        }

        private let box: Box
        var span: any Span { box.span }
        var attributes: SpanAttributes
        /// The partition the sender chose (already an attribute).
        let chosenPartition: Int?

        init(span: any Span, attributes: SpanAttributes, chosenPartition: Int?) {
            box = Box(span)
            self.attributes = attributes
            self.chosenPartition = chosenPartition
        }

        /// Ends the span with the record's outcome and, for a record sent in a transaction, the transaction's.
        consuming func end(with result: Result<KafkaDeliveryReport, KafkaError>, transactionOutcome: TransactionOutcome? = nil) {
            switch result {
            case .success(let report):
                if report.partition != chosenPartition {
                    attributes.set("messaging.destination.partition.id", value: .string(PartitionID.text(report.partition)))
                }
                attributes.set("messaging.kafka.offset", value: .int64(report.offset))
            case .failure(let error):
                fail(with: error)
            }
            if let transactionOutcome {
                attributes.set("tracedkafka.transaction.outcome", value: .string(transactionOutcome.name))
                if case .aborted(let error) = transactionOutcome, case .success = result { fail(with: error) }
            }
            KafkaTracingAttributes.hand(attributes, to: span)
            span.end()
        }

        /// Marks the span failed (error status, the error recorded, `error.type`).
        private mutating func fail(with error: any Error) {
            attributes.set("error.type", value: .string(KafkaError.errorType(of: error)))
            KafkaTracingAttributes.recordFailure(of: span, error)
        }
    }

    /// Starts the send span for a record and writes its context into `traceHeaders`, which the backend writes after
    /// the record's own headers.
    ///
    /// A record that already carries a context (a re-send or a forwarded record) gets that context as a link, and
    /// its old trace headers are dropped (so are any of the keys the tracer writes now). The record itself is not
    /// copied: only when its headers must change, the ones to send instead are in `keptHeaders`.
    /// - Parameters:
    ///   - record: The record to send.
    ///   - traceHeaders: Where the span's context goes (empty before; on an untraced topic it gets the ambient
    ///     context, if there is one and the record carries none).
    ///   - keptHeaders: `nil` before; the record's headers without the dropped ones, when any was dropped.
    /// - Returns: The span to end at the delivery report, or `nil` when tracing is off or the span is not sampled:
    ///   a span that records nothing is ended here, once its context is written, so the record needs no
    ///   delivery-report work for it.
    @_spi(Benchmarks) public func startSend(
        _ record: KafkaProducerRecord,
        traceHeaders: inout TrailingHeaders,
        keptHeaders: inout KafkaHeaders?
    ) -> SendSpan? {
        guard let tracer = configuration.currentTracer else { return nil }
        if configuration.isUntraced(record.topic) {
            propagateWithoutSpan(record, tracer: tracer, into: &traceHeaders, keptHeaders: &keptHeaders)
            return nil
        }
        let (previous, previousKeys) = configuration.propagatesContext ? Self.carriedContext(of: record, tracer: tracer) : (nil, [])
        let template = templates.template(for: record.topic)
        let span = tracer.startSpan(template.name, context: InstrumentationContext.current ?? .topLevel, ofKind: .producer)
        var send: SendSpan?
        if span.isRecording {
            var attributes = template.attributes
            if let partition = record.partition { attributes.set("messaging.destination.partition.id", value: .string(PartitionID.text(partition))) }
            if let text = record.keyBytes?.string {
                attributes.set("messaging.kafka.message.key", value: .string(text))
            }
            if record.valueBytes == nil { attributes.set("messaging.kafka.message.tombstone", value: .bool(true)) }
            if configuration.recordsBodySize { attributes.set("messaging.message.body.size", value: .int64(Int64(record.valueBytes?.count ?? 0))) }
            KafkaTracingAttributes.captureHeaders(configuration, from: record.headers, into: &attributes)
            configuration.sendAttributes?(record, &attributes)
            if let previous { span.addLink(SpanLink(context: previous, attributes: [:])) }
            send = SendSpan(span: span, attributes: attributes, chosenPartition: record.partition)
        }
        if configuration.propagatesContext {
            tracer.inject(span.context, into: &traceHeaders, using: TrailingHeadersInjector())
            Self.dropStaleTraceHeaders(from: record.headers, into: &keptHeaders, read: previousKeys, written: traceHeaders)
        }
        if send == nil { span.end() }
        return send
    }

    /// A send to an untraced topic: no span; a record that carries a valid context keeps it as it is, any other gets
    /// the ambient context, its stale trace headers dropped as on a traced topic.
    private func propagateWithoutSpan(
        _ record: KafkaProducerRecord,
        tracer: any Tracer,
        into traceHeaders: inout TrailingHeaders,
        keptHeaders: inout KafkaHeaders?
    ) {
        guard configuration.propagatesContext, let ambient = InstrumentationContext.current else { return }
        let (carried, readKeys) = Self.carriedContext(of: record, tracer: tracer)
        if carried != nil { return }
        tracer.inject(ambient, into: &traceHeaders, using: TrailingHeadersInjector())
        Self.dropStaleTraceHeaders(from: record.headers, into: &keptHeaders, read: readKeys, written: traceHeaders)
    }

    /// The context the record already carries, if any, and the keys of the headers the tracer read it from.
    private static func carriedContext(of record: KafkaProducerRecord, tracer: any Tracer) -> (InstrumentationContext?, Set<String>) {
        guard !record.headers.isEmpty else { return (nil, []) }
        let extractor = KeyRecordingExtractor()
        var context = InstrumentationContext.topLevel
        tracer.extract(record.headers, into: &context, using: extractor)
        return (context.isEmpty ? nil : context, extractor.keys)
    }

    /// Sets `kept` to `headers` without the trace headers that a new context replaces, when it has any: every
    /// `traceparent` and `tracestate` (a W3C tracestate belongs to its traceparent and goes with it, even when the
    /// tracer stopped reading at a bad traceparent), every header of a key the tracer read the old context from, and
    /// every header of a key it wrote now, so none is repeated or outlives the new context.
    private static func dropStaleTraceHeaders(
        from headers: KafkaHeaders,
        into kept: inout KafkaHeaders?,
        read: Set<String>,
        written: TrailingHeaders
    ) {
        let isStale = { (header: KafkaHeader) -> Bool in
            header.hasKey("traceparent") || header.hasKey("tracestate")
                || (header.keyIsUTF8 && (read.contains(header.key) || written.contains(key: header.key)))
        }
        guard !headers.isEmpty, headers.contains(where: isStale) else { return }
        kept = KafkaHeaders(headers.filter { !isStale($0) })
    }

    /// Ends a send span with the record's outcome.
    /// - Parameters:
    ///   - send: The span ``startSend(_:traceHeaders:keptHeaders:)`` returned.
    ///   - result: The delivery report or the error.
    @_spi(Benchmarks) public static func end(_ send: consuming SendSpan, with result: Result<KafkaDeliveryReport, KafkaError>) {
        send.end(with: result)
    }

    /// Starts the INTERNAL span `transaction`, a child of the ambient span, or returns `nil` when tracing is off.
    ///
    /// The conventions define no transaction operation: INTERNAL, because the span covers the application's work
    /// (the sends inside it are its PRODUCER children); named after the operation, as kafkajs' instrumentation does.
    /// - Parameter transactionalID: The producer's transactional id, recorded as `tracedkafka.transaction.id`.
    func startTransaction(_ transactionalID: String) -> (any Span)? {
        guard let tracer = configuration.currentTracer else { return nil }
        let span = tracer.startSpan("transaction", context: InstrumentationContext.current ?? .topLevel, ofKind: .internal)
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes["messaging.system"] = "kafka"
                attributes["messaging.operation.name"] = "transaction"
                attributes["tracedkafka.transaction.id"] = transactionalID
                if let clientID { attributes["messaging.client.id"] = clientID }
                server?.apply(to: &attributes)
            }
        }
        return span
    }

    /// Ends a transaction span with its outcome and the number of records sent in it.
    static func endTransaction(_ span: any Span, outcome: TransactionOutcome, sentCount: Int) {
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes["tracedkafka.transaction.outcome"] = outcome.name
                attributes["messaging.batch.message_count"] = sentCount
            }
            if case .aborted(let error) = outcome { KafkaTracingAttributes.fail(span, with: error) }
        }
        span.end()
    }
}

extension KafkaProducerTracing {
    /// The tracing layer of a producer with this configuration and client id, talking to no broker.
    /// - Parameters:
    ///   - configuration: The tracing configuration.
    ///   - clientID: The client id recorded on spans.
    @_spi(Benchmarks) public init(configuration: KafkaTracingConfiguration, clientID: String?) {
        self.init(configuration: configuration, clientID: clientID, server: nil)
    }
}
