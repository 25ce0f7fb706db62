import Tracing

/// The consumer's tracing layer: CONSUMER spans around the user's handler.
///
/// Not API: visible to the benchmarks through `@_spi(Benchmarks) import TracedKafka`, and free to change.
@_spi(Benchmarks) public struct KafkaConsumerTracing: Sendable {
    let configuration: KafkaTracingConfiguration
    /// The group recorded on spans; `nil` for a consumer of given partitions without one.
    let groupID: String?
    let clientID: String?
    let server: KafkaServerAddress?

    /// Whether ``extractContext(from:)`` can find anything: tracing and propagation are on.
    var extractsContext: Bool { configuration.isEnabled && configuration.propagatesContext }

    /// The producer's context carried in a message's headers, or `nil` (propagation off, no or hostile headers).
    @_spi(Benchmarks) public func extractContext(from message: KafkaConsumerMessage) -> InstrumentationContext? {
        guard configuration.propagatesContext, message.hasHeaders, let tracer = configuration.currentTracer else {
            return nil
        }
        // Always into a fresh context, never into one that already carries a span.
        var context = InstrumentationContext.topLevel
        tracer.extract(message.headers, into: &context, using: KafkaHeadersExtractor())
        return context.isEmpty ? nil : context
    }

    /// Runs `handler` inside a `process {topic}` span whose context is `InstrumentationContext.current`.
    /// - Parameters:
    ///   - message: The message handled, its `traceContext` already extracted (``extractContext(from:)``, which the
    ///     consumer calls once as it takes the message; a message whose headers carry no context is not parsed again).
    ///   - handler: The user's handler.
    @_spi(Benchmarks) nonisolated(nonsending) public func withProcessSpan(
        _ message: KafkaConsumerMessage,
        _ handler: (KafkaConsumerMessage) async throws -> Void
    ) async throws {
        guard let tracer = configuration.currentTracer else { return try await handler(message) }
        let producerContext = message.traceContext
        let span = tracer.startSpan(
            "process \(message.topic)",
            context: parent(producerContext: producerContext),
            ofKind: .consumer
        )
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes.reserveCapacity(attributes.count + 13)  // one allocation instead of one per doubling
                setCommon(&attributes)
                attributes["messaging.destination.name"] = message.topic
                attributes["messaging.destination.partition.id"] = String(message.partition)
                attributes["messaging.kafka.offset"] = message.offset
                if let key = message.keyString { attributes["messaging.kafka.message.key"] = key }
                if message.isTombstone { attributes["messaging.kafka.message.tombstone"] = true }
                attributes["messaging.message.body.size"] = message.valueCount
                KafkaTracingAttributes.captureHeaders(configuration, from: message.headers, into: &attributes)
            }
            if let producerContext { span.addLink(SpanLink(context: producerContext, attributes: [:])) }
        }
        try await run(in: span) { try await handler(message) }
    }

    /// Runs `handler` inside one `process {topic}` span for a batch, with one link per message whose extracted
    /// `traceContext` it carries.
    nonisolated(nonsending) func withBatchSpan(
        _ messages: [KafkaConsumerMessage],
        _ handler: ([KafkaConsumerMessage]) async throws -> Void
    ) async throws {
        guard let tracer = configuration.currentTracer, let first = messages.first else { return try await handler(messages) }
        let topics = Set(messages.map(\.topic))
        let name = topics.count == 1 ? "process \(first.topic)" : "process"
        let span = tracer.startSpan(name, context: InstrumentationContext.current ?? .topLevel, ofKind: .consumer)
        if span.isRecording {
            span.updateAttributes { attributes in
                setCommon(&attributes)
                if topics.count == 1 { attributes["messaging.destination.name"] = first.topic }
                attributes["messaging.batch.message_count"] = messages.count
            }
            for message in messages {
                guard let context = message.traceContext else { continue }
                span.addLink(
                    SpanLink(
                        context: context,
                        attributes: [
                            "messaging.destination.partition.id": .string(String(message.partition)),
                            "messaging.kafka.offset": .int64(message.offset),
                        ]
                    )
                )
            }
        }
        try await run(in: span) { try await handler(messages) }
    }

    private func parent(producerContext: InstrumentationContext?) -> InstrumentationContext {
        switch configuration.consumerParent.kind {
        case .linkOnly:
            return .topLevel
        case .producerContext:
            if let ambient = InstrumentationContext.current, !ambient.isEmpty, carriesSpan(ambient) { return ambient }
            return producerContext ?? .topLevel
        }
    }

    /// Whether a context holds a span the tracer would propagate (not just baggage or other values): the tracer
    /// writes something for it.
    private func carriesSpan(_ context: InstrumentationContext) -> Bool {
        guard let tracer = configuration.currentTracer else { return false }
        var probe = KafkaHeaders()
        tracer.inject(context, into: &probe, using: KafkaHeadersInjector())
        return !probe.isEmpty
    }

    private func setCommon(_ attributes: inout SpanAttributes) {
        attributes["messaging.system"] = "kafka"
        attributes["messaging.operation.name"] = "process"
        attributes["messaging.operation.type"] = "process"
        if let groupID { attributes["messaging.consumer.group.name"] = groupID }
        if let clientID { attributes["messaging.client.id"] = clientID }
        server?.apply(to: &attributes)
    }

    private nonisolated(nonsending) func run(in span: any Span, _ body: nonisolated(nonsending) () async throws -> Void) async throws {
        defer { span.end() }
        do {
            try await InstrumentationContext.withValue(span.context) { try await body() }
        } catch {
            KafkaTracingAttributes.fail(span, with: error)
            throw error
        }
    }
}

extension KafkaConsumerTracing {
    /// The tracing layer of a consumer in `groupID`, talking to no broker.
    /// - Parameters:
    ///   - configuration: The tracing configuration.
    ///   - groupID: The consumer group recorded on spans.
    ///   - clientID: The client id recorded on spans.
    @_spi(Benchmarks) public init(configuration: KafkaTracingConfiguration, groupID: String, clientID: String?) {
        self.init(configuration: configuration, groupID: groupID, clientID: clientID, server: nil)
    }
}
