import Tracing

/// How a client traces: whether it creates spans, whether it carries trace context in record headers, and with
/// which tracer.
public struct KafkaTracingConfiguration: Sendable {
    /// Where a consumer's process span gets its parent. A struct with static members, so choices can be added
    /// without breaking anybody's `switch`.
    public struct ConsumerParent: Sendable, Hashable {
        enum Kind: Hashable { case producerContext, linkOnly }
        let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The ambient span when there is one, otherwise the producer's context from the headers: the process span
        /// is an automatic child of the send span. It links to the producer's context either way. The default.
        public static let producerContext = ConsumerParent(.producerContext)
        /// A new root span with a link to the producer's context, for long consume-produce chains where one trace
        /// per hop reads better.
        public static let linkOnly = ConsumerParent(.linkOnly)
    }

    /// Whether the client creates spans. With `false` it neither creates spans nor touches headers.
    public var isEnabled: Bool
    /// Whether trace context is written into (producer) and read from (consumer) record headers. Spans are still
    /// created when this is `false`; they just don't cross the hop.
    public var propagatesContext: Bool
    /// The tracer to use; `nil` resolves `InstrumentationSystem.tracer` at each operation, so a tracer bound with
    /// `withTracer(_:_:)` is honoured.
    public var tracer: (any Tracer)?
    /// Where a process span gets its parent.
    public var consumerParent: ConsumerParent
    /// Headers recorded as `messaging.header.<name>` span attributes (as text when the value is UTF-8), by name or
    /// by pattern: `*` stands for any run of characters (`"x-*"`, `"*-id"`, `"*"`). Names are matched exactly
    /// (Kafka header keys are case-sensitive). Nothing is captured by default.
    public var capturedHeaders: Set<String>
    /// The longest captured header value, in bytes: a longer one is recorded cut to this length (at a character
    /// boundary), so a large header never becomes a large span attribute. 256 by default.
    public var maxCapturedHeaderLength: Int
    /// The most headers captured on one span: past it, further matches are left out (names first, then patterns,
    /// each pattern from the last header back), so a message with thousands of headers never makes a span of
    /// thousands of attributes. 32 by default.
    public var maxCapturedHeaders: Int
    /// Whether the application's commits (``KafkaConsumer/commit(_:)``, ``KafkaConsumer/commit(offsets:)``) run in
    /// a CLIENT span `commit {topic}` (`messaging.operation.type` `settle`), a child of the ambient span — the process
    /// span, inside a handler. On by default: a commit waits for the coordinator anyway, so the span costs nothing
    /// a user would notice. The commits the consumer makes by itself (on its interval, at rebalance and shutdown)
    /// get no span: nothing the application does is their parent, so each would be a detached root. They are
    /// counted in the `tracedkafka.consumer.commits` metric instead.
    public var commitSpans: Bool
    /// Whether handing messages to the application makes a CLIENT span `poll {topic}` (`messaging.operation.type`
    /// `receive`): one per `next()` of ``KafkaConsumer/messages`` and one per batch of
    /// ``KafkaConsumer/runBatches(maxMessages:_:)``, covering the call, with a link to each message's producer
    /// context. Never for a call that hands out nothing. Off by default (a span per message).
    public var pollSpans: Bool
    /// Topics whose records get no spans while their trace context still flows: a send to one writes the ambient
    /// context into the record's headers (and leaves a context the record already carries as it is); a message
    /// from one is handled with its producer's context as the current context, without a process span.
    public var untracedTopics: Set<String>
    /// Whether send and process spans record `messaging.message.body.size` (the value's size in bytes), which the
    /// conventions make opt-in. Off by default.
    public var recordsBodySize: Bool
    /// Adds the application's attributes to each send span, given the record (called after the library has set its
    /// own, only for spans that record).
    public var sendAttributes: (@Sendable (KafkaProducerRecord, inout SpanAttributes) -> Void)?
    /// Adds the application's attributes to each process span of one message, given the message (called after the
    /// library has set its own, only for spans that record; batch spans do not call it).
    public var processAttributes: (@Sendable (KafkaConsumerMessage, inout SpanAttributes) -> Void)?

    /// Creates a tracing configuration.
    /// - Parameters:
    ///   - isEnabled: Whether spans are created.
    ///   - propagatesContext: Whether trace context crosses the hop in headers.
    ///   - tracer: A fixed tracer, or `nil` for `InstrumentationSystem.tracer` at each operation.
    ///   - consumerParent: Where process spans get their parent.
    ///   - capturedHeaders: Header names or `*` patterns to record as span attributes.
    ///   - maxCapturedHeaderLength: The longest captured value, in bytes.
    ///   - maxCapturedHeaders: The most headers captured on one span.
    ///   - commitSpans: Whether the application's commits get spans.
    ///   - pollSpans: Whether handing out messages makes receive spans.
    ///   - untracedTopics: Topics whose records get no spans but keep their context.
    ///   - recordsBodySize: Whether spans record `messaging.message.body.size`.
    ///   - sendAttributes: Adds attributes to send spans.
    ///   - processAttributes: Adds attributes to process spans.
    public init(
        isEnabled: Bool = true,
        propagatesContext: Bool = true,
        tracer: (any Tracer)? = nil,
        consumerParent: ConsumerParent = .producerContext,
        capturedHeaders: Set<String> = [],
        maxCapturedHeaderLength: Int = 256,
        maxCapturedHeaders: Int = 32,
        commitSpans: Bool = true,
        pollSpans: Bool = false,
        untracedTopics: Set<String> = [],
        recordsBodySize: Bool = false,
        sendAttributes: (@Sendable (KafkaProducerRecord, inout SpanAttributes) -> Void)? = nil,
        processAttributes: (@Sendable (KafkaConsumerMessage, inout SpanAttributes) -> Void)? = nil
    ) {
        self.isEnabled = isEnabled
        self.propagatesContext = propagatesContext
        self.tracer = tracer
        self.consumerParent = consumerParent
        self.capturedHeaders = capturedHeaders
        self.maxCapturedHeaderLength = maxCapturedHeaderLength
        self.maxCapturedHeaders = maxCapturedHeaders
        self.commitSpans = commitSpans
        self.pollSpans = pollSpans
        self.untracedTopics = untracedTopics
        self.recordsBodySize = recordsBodySize
        self.sendAttributes = sendAttributes
        self.processAttributes = processAttributes
    }

    /// Tracing on, with the tracer resolved per operation.
    public static var enabled: KafkaTracingConfiguration { KafkaTracingConfiguration() }
    /// No spans, no headers.
    public static var disabled: KafkaTracingConfiguration { KafkaTracingConfiguration(isEnabled: false) }

    /// Whether records of `topic` get no spans.
    func isUntraced(_ topic: String) -> Bool { !untracedTopics.isEmpty && untracedTopics.contains(topic) }

    /// The tracer for one operation, or `nil` when tracing is off.
    var currentTracer: (any Tracer)? {
        guard isEnabled else { return nil }
        return tracer ?? GlobalTracer.current
    }
}
