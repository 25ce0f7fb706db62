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
    /// Header names recorded as `messaging.header.<name>` span attributes (as text when the value is UTF-8).
    /// Nothing is captured by default.
    public var capturedHeaders: Set<String>
    /// The longest captured header value, in bytes: a longer one is recorded cut to this length (at a character
    /// boundary), so a large header never becomes a large span attribute. 256 by default.
    public var maxCapturedHeaderLength: Int

    /// Creates a tracing configuration.
    /// - Parameters:
    ///   - isEnabled: Whether spans are created.
    ///   - propagatesContext: Whether trace context crosses the hop in headers.
    ///   - tracer: A fixed tracer, or `nil` for `InstrumentationSystem.tracer` at each operation.
    ///   - consumerParent: Where process spans get their parent.
    ///   - capturedHeaders: Header names to record as span attributes.
    ///   - maxCapturedHeaderLength: The longest captured value, in bytes.
    public init(
        isEnabled: Bool = true,
        propagatesContext: Bool = true,
        tracer: (any Tracer)? = nil,
        consumerParent: ConsumerParent = .producerContext,
        capturedHeaders: Set<String> = [],
        maxCapturedHeaderLength: Int = 256
    ) {
        self.isEnabled = isEnabled
        self.propagatesContext = propagatesContext
        self.tracer = tracer
        self.consumerParent = consumerParent
        self.capturedHeaders = capturedHeaders
        self.maxCapturedHeaderLength = maxCapturedHeaderLength
    }

    /// Tracing on, with the tracer resolved per operation.
    public static var enabled: KafkaTracingConfiguration { KafkaTracingConfiguration() }
    /// No spans, no headers.
    public static var disabled: KafkaTracingConfiguration { KafkaTracingConfiguration(isEnabled: false) }

    /// The tracer for one operation, or `nil` when tracing is off.
    var currentTracer: (any Tracer)? {
        guard isEnabled else { return nil }
        return tracer ?? InstrumentationSystem.tracer
    }
}
