import Logging
import Tracing

extension Logger {
    /// A copy that carries the client's identity on every line: `messaging.client.id` and, for consumers,
    /// `messaging.consumer.group.name` (librdkafka's own lines included).
    func withClientMetadata(clientID: String?, groupID: String?) -> Logger {
        var logger = self
        logger[metadataKey: "messaging.system"] = "kafka"
        if let clientID { logger[metadataKey: "messaging.client.id"] = "\(clientID)" }
        if let groupID { logger[metadataKey: "messaging.consumer.group.name"] = "\(groupID)" }
        return logger
    }
}

extension Logger.MetadataProvider {
    /// Adds `trace_id`, `span_id` and `trace_flags` of the current span to every log line, read from the W3C
    /// `traceparent` the tracer would write for it — so it works with any tracer that propagates W3C trace context
    /// (TracedKafkaTesting's `W3CRecordingTracer`, swift-otel, …), and adds nothing for other tracers or outside a span.
    ///
    /// With swift-otel, use its own `OTel.makeLoggingMetadataProvider()` instead: it adds the same keys, so the two are
    /// never needed together (and if they are multiplexed, they agree). Inside a ``KafkaConsumer/run(_:)`` handler the
    /// current span is the message's `process` span, so every line a handler logs carries the trace it belongs to.
    /// - Parameter tracer: The tracer whose context to read; `nil` for `InstrumentationSystem.tracer`, resolved per line.
    /// - Returns: The provider, for `LoggingSystem.bootstrap(_:metadataProvider:)` or a `Logger`'s initializer.
    public static func tracedKafka(tracer: (any Tracer)? = nil) -> Logger.MetadataProvider {
        Logger.MetadataProvider {
            guard let context = InstrumentationContext.current else { return [:] }
            var carrier: KafkaHeaders = []
            (tracer ?? GlobalTracer.current).inject(context, into: &carrier, using: KafkaHeadersInjector())
            guard let traceparent = carrier.lastValue(forKey: "traceparent").flatMap({ String(validating: $0, as: UTF8.self) })
            else { return [:] }
            // version-traceid-spanid-flags; the extractor's W3C checks already hold for what a tracer writes.
            let fields = traceparent.split(separator: "-")
            guard fields.count == 4, fields[1].count == 32, fields[2].count == 16 else { return [:] }
            return [
                "trace_id": "\(fields[1])",
                "span_id": "\(fields[2])",
                "trace_flags": "\(fields[3])",
            ]
        }
    }
}
