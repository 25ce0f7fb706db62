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
    /// Per topic, the name and the first attributes of its process spans.
    private let processTemplates: TopicSpanTemplates

    init(configuration: KafkaTracingConfiguration, groupID: String?, clientID: String?, server: KafkaServerAddress?) {
        self.configuration = configuration
        self.groupID = groupID
        self.clientID = clientID
        self.server = server
        var attributes = SpanAttributes()
        Self.setCommon(&attributes, operation: "process", type: "process", groupID: groupID, clientID: clientID, server: server)
        processTemplates = TopicSpanTemplates(operation: "process", attributes: attributes)
    }

    /// What the process spans of one reading loop share, decided once per loop: the tracer (resolved as at any
    /// operation: `tracer ?? InstrumentationSystem.tracer`, honouring `withTracer` around the loop), and where their
    /// parent comes from (whether the loop's ambient context carries a span can only be learnt by asking the tracer
    /// to write it out).
    @_spi(Benchmarks) public struct ProcessScope: Sendable {
        /// The tracer, `nil` when tracing is off.
        let tracer: (any Tracer)?
        /// The ambient context, when it carries a span the tracer would propagate.
        let ambientSpan: InstrumentationContext?
    }

    /// The scope of the reading loop running in the current task.
    @_spi(Benchmarks) public func processScope() -> ProcessScope {
        let tracer = configuration.currentTracer
        return ProcessScope(tracer: tracer, ambientSpan: tracer.flatMap(ambientSpan(for:)))
    }

    /// The current task's context, when it carries a span `tracer` would propagate.
    private func ambientSpan(for tracer: any Tracer) -> InstrumentationContext? {
        guard let ambient = InstrumentationContext.current, !ambient.isEmpty, carriesSpan(ambient, tracer: tracer) else { return nil }
        return ambient
    }

    /// Whether ``extractContext(from:)`` can find anything: tracing and propagation are on.
    var extractsContext: Bool { configuration.isEnabled && configuration.propagatesContext }

    /// The producer's context carried in a message's headers, or `nil` (propagation off, no or hostile headers).
    /// - Parameters:
    ///   - message: The message.
    ///   - scope: The reading loop's ``processScope()``, whose tracer is used; `nil` to resolve the tracer now.
    @_spi(Benchmarks) public func extractContext(from message: KafkaConsumerMessage, in scope: ProcessScope? = nil) -> InstrumentationContext? {
        guard configuration.propagatesContext, message.hasHeaders, let tracer = scope.map(\.tracer) ?? configuration.currentTracer else {
            return nil
        }
        // Always into a fresh context, never into one that already carries a span; the headers read in place.
        var context = InstrumentationContext.topLevel
        tracer.extract(message, into: &context, using: KafkaHeadersExtractor.MessageExtractor())
        return context.isEmpty ? nil : context
    }

    /// Runs `handler` inside a `process {topic}` span whose context is `InstrumentationContext.current`.
    /// - Parameters:
    ///   - message: The message handled, its `traceContext` already extracted (``extractContext(from:)``, which the
    ///     consumer calls once as it takes the message; a message whose headers carry no context is not parsed again).
    ///   - scope: The reading loop's ``processScope()``, or `nil` to find it now.
    ///   - handler: The user's handler.
    @_spi(Benchmarks) nonisolated(nonsending) public func withProcessSpan(
        _ message: KafkaConsumerMessage,
        in scope: ProcessScope? = nil,
        _ handler: nonisolated(nonsending) (KafkaConsumerMessage) async throws -> Void
    ) async throws {
        // Without a loop's scope, the ambient span is looked for only when a span is made and parented on it.
        guard let tracer = scope.map(\.tracer) ?? configuration.currentTracer else { return try await handler(message) }
        let producerContext = message.traceContext
        if configuration.isUntraced(message.topic) {
            // No span; the handler continues the producer's trace.
            guard let producerContext else { return try await handler(message) }
            return try await InstrumentationContext.withValue(producerContext) { try await handler(message) }
        }
        let template = processTemplates.template(for: message.topic)
        let span = tracer.startSpan(
            template.name,
            context: parent(producerContext: producerContext, ambientSpan: scope.map(\.ambientSpan) ?? ambientSpan(for: tracer)),
            ofKind: .consumer
        )
        if span.isRecording {
            var attributes = template.attributes
            attributes.set("messaging.destination.partition.id", value: .string(PartitionID.text(message.partition)))
            attributes.set("messaging.kafka.offset", value: .int64(message.offset))
            if let key = message.keyString { attributes.set("messaging.kafka.message.key", value: .string(key)) }
            if message.isTombstone { attributes.set("messaging.kafka.message.tombstone", value: .bool(true)) }
            if configuration.recordsBodySize { attributes.set("messaging.message.body.size", value: .int64(Int64(message.valueCount))) }
            // A message's headers are copied out each time they are read: only when some are captured.
            if !configuration.capturedHeaders.isEmpty {
                KafkaTracingAttributes.captureHeaders(configuration, from: message.headers, into: &attributes)
            }
            configuration.processAttributes?(message, &attributes)
            KafkaTracingAttributes.hand(attributes, to: span)
            if let producerContext { span.addLink(SpanLink(context: producerContext, attributes: [:])) }
        }
        try await run(in: span) { try await handler(message) }
    }

    /// Runs `handler` inside one `process {topic}` span for a batch, with one link per message whose extracted
    /// `traceContext` it carries.
    nonisolated(nonsending) func withBatchSpan(
        _ messages: [KafkaConsumerMessage],
        _ handler: nonisolated(nonsending) ([KafkaConsumerMessage]) async throws -> Void
    ) async throws {
        guard let tracer = configuration.currentTracer, let first = messages.first else { return try await handler(messages) }
        let topics = Set(messages.map(\.topic))
        if topics.allSatisfy(configuration.isUntraced) { return try await handler(messages) }
        let name = topics.count == 1 ? "process \(first.topic)" : "process"
        let span = tracer.startSpan(name, context: InstrumentationContext.current ?? .topLevel, ofKind: .consumer)
        if span.isRecording {
            span.updateAttributes { attributes in
                setCommon(&attributes)
                if topics.count == 1 {
                    attributes["messaging.destination.name"] = first.topic
                    if messages.allSatisfy({ $0.partition == first.partition }) {
                        attributes["messaging.destination.partition.id"] = PartitionID.text(first.partition)
                    }
                }
                attributes["messaging.batch.message_count"] = messages.count
            }
            linkProducerContexts(of: messages, to: span)
        }
        try await run(in: span) { try await handler(messages) }
    }

    /// Runs an application's commit inside a CLIENT span `commit {topic}` (when ``KafkaTracingConfiguration/commitSpans``
    /// is on), a child of the ambient span.
    /// - Parameters:
    ///   - offsets: The positions committed.
    ///   - commit: The commit itself.
    nonisolated(nonsending) func withCommitSpan(
        _ offsets: [KafkaTopicPartitionOffset],
        _ commit: nonisolated(nonsending) () async throws -> Void
    ) async throws {
        guard configuration.commitSpans, let tracer = configuration.currentTracer, let first = offsets.first,
            !offsets.allSatisfy({ configuration.isUntraced($0.topic) })
        else { return try await commit() }
        // `messaging.kafka.offset` is a record's offset: the last one the commit covers, before the next to read.
        let span = startClientSpan(
            tracer, operation: "commit", type: "settle", topics: offsets.lazy.map(\.topic),
            first: (first.partition, first.offset - 1), count: offsets.count, countKey: "tracedkafka.commit.partition_count"
        )
        defer { span.end() }
        do {
            try await commit()
        } catch {
            KafkaTracingAttributes.fail(span, with: error)
            throw error
        }
    }

    /// When a receive began, if poll spans are on (read before waiting for messages).
    func pollStarted() -> DefaultTracerClock.Instant? {
        configuration.pollSpans && configuration.isEnabled ? DefaultTracerClock.now : nil
    }

    /// Records a CLIENT span `poll {topic}` from `start` to now for messages just handed to the application, with
    /// a link to each one's producer context; nothing when no message (of a traced topic) was handed out.
    /// - Parameters:
    ///   - messages: The messages handed out.
    ///   - start: When the receive began (``pollStarted()``).
    ///   - isBatch: Whether they were handed out by a batch API (``KafkaConsumer/runBatches(maxMessages:_:)``): its
    ///     span has `messaging.batch.message_count` even for one message, as the conventions ask of batch APIs; a
    ///     single-message receive's has the message's key and tombstone flag instead.
    func recordPoll(_ messages: some Collection<KafkaConsumerMessage>, startedAt start: DefaultTracerClock.Instant?, isBatch: Bool) {
        guard let start, let tracer = configuration.currentTracer else { return }
        let traced = messages.filter { !configuration.isUntraced($0.topic) }
        guard let first = traced.first else { return }
        let span = startClientSpan(
            tracer, operation: "poll", type: "receive", topics: traced.lazy.map(\.topic),
            first: (first.partition, first.offset), count: traced.count, countKey: "messaging.batch.message_count",
            alwaysCounts: isBatch, at: start
        ) { attributes in
            guard !isBatch else { return }
            if let key = first.keyString { attributes["messaging.kafka.message.key"] = key }
            if first.isTombstone { attributes["messaging.kafka.message.tombstone"] = true }
        }
        if span.isRecording { linkProducerContexts(of: traced, to: span) }
        span.end()
    }

    /// Starts a CLIENT span `<operation> {topic}` (`<operation>` across topics), a child of the ambient span, for an
    /// operation on `count` positions: its attributes name the topic when there is one, the partition and offset
    /// when there is one position, the count under `countKey` when there are more (or always, with `alwaysCounts`),
    /// and what `more` adds.
    private func startClientSpan(
        _ tracer: any Tracer,
        operation: String,
        type: String,
        topics: some Collection<String>,
        first: (partition: Int, offset: Int64),
        count: Int,
        countKey: String,
        alwaysCounts: Bool = false,
        at start: DefaultTracerClock.Instant = DefaultTracerClock.now,
        more: (inout SpanAttributes) -> Void = { _ in }
    ) -> any Span {
        let topic = topics.first.flatMap { first in topics.allSatisfy { $0 == first } ? first : nil }
        let span = tracer.startSpan(
            topic.map { "\(operation) \($0)" } ?? operation,
            context: InstrumentationContext.current ?? .topLevel,
            ofKind: .client,
            at: start
        )
        if span.isRecording {
            span.updateAttributes { attributes in
                setCommon(&attributes, operation: operation, type: type)
                if let topic { attributes["messaging.destination.name"] = topic }
                if count == 1 {
                    attributes["messaging.destination.partition.id"] = PartitionID.text(first.partition)
                    if first.offset >= 0 { attributes["messaging.kafka.offset"] = first.offset }
                }
                if count > 1 || alwaysCounts { attributes[countKey] = count }
                more(&attributes)
            }
        }
        return span
    }

    /// Links a span to each message's producer context, the link carrying the message's partition, offset and key,
    /// and its topic when the messages' topics differ (the span then names none).
    private func linkProducerContexts(of messages: some Collection<KafkaConsumerMessage>, to span: any Span) {
        let topicVaries = messages.first.map { first in messages.contains { $0.topic != first.topic } } ?? false
        for message in messages {
            guard let context = message.traceContext else { continue }
            var attributes: SpanAttributes = [
                "messaging.destination.partition.id": .string(PartitionID.text(message.partition)),
                "messaging.kafka.offset": .int64(message.offset),
            ]
            if topicVaries { attributes["messaging.destination.name"] = message.topic }
            if let key = message.keyString { attributes["messaging.kafka.message.key"] = key }
            span.addLink(SpanLink(context: context, attributes: attributes))
        }
    }

    private func parent(producerContext: InstrumentationContext?, ambientSpan: @autoclosure () -> InstrumentationContext?) -> InstrumentationContext {
        switch configuration.consumerParent.kind {
        case .linkOnly:
            return .topLevel
        case .producerContext:
            return ambientSpan() ?? producerContext ?? .topLevel
        }
    }

    /// Whether a context holds a span the tracer would propagate (not just baggage or other values): the tracer
    /// writes something for it.
    private func carriesSpan(_ context: InstrumentationContext, tracer: any Tracer) -> Bool {
        var probe = KafkaHeaders()
        tracer.inject(context, into: &probe, using: KafkaHeadersInjector())
        return !probe.isEmpty
    }

    private func setCommon(_ attributes: inout SpanAttributes, operation: String = "process", type: String = "process") {
        Self.setCommon(&attributes, operation: operation, type: type, groupID: groupID, clientID: clientID, server: server)
    }

    private static func setCommon(
        _ attributes: inout SpanAttributes,
        operation: String,
        type: String,
        groupID: String?,
        clientID: String?,
        server: KafkaServerAddress?
    ) {
        attributes.set("messaging.system", value: .string("kafka"))
        attributes.set("messaging.operation.name", value: .string(operation))
        attributes.set("messaging.operation.type", value: .string(type))
        if let groupID { attributes.set("messaging.consumer.group.name", value: .string(groupID)) }
        if let clientID { attributes.set("messaging.client.id", value: .string(clientID)) }
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
