import Tracing

/// A span the ``W3CRecordingTracer`` recorded when it ended.
public struct RecordedSpan: Sendable {
    /// A link to another span.
    public struct Link: Sendable, Hashable {
        /// The linked span's trace id.
        public var traceID: String
        /// The linked span's id.
        public var spanID: String
        /// The link's attributes.
        public var attributes: SpanAttributes

        /// Hashes the ids.
        public func hash(into hasher: inout Hasher) {
            hasher.combine(traceID)
            hasher.combine(spanID)
        }
    }

    /// The span's name.
    public var operationName: String
    /// The span's kind.
    public var kind: SpanKind
    /// The trace id, 32 lowercase hex digits.
    public var traceID: String
    /// The span id, 16 lowercase hex digits.
    public var spanID: String
    /// The parent's span id; `nil` for a root.
    public var parentSpanID: String?
    /// The span's links.
    public var links: [Link]
    /// The span's attributes.
    public var attributes: SpanAttributes
    /// The span's status, if set.
    public var status: SpanStatus?
    /// The errors recorded on the span, described.
    public var errors: [String]
    /// The names of the span's events, in the order they were added.
    public var eventNames: [String]
    /// When it started, in nanoseconds since the epoch.
    public var startNanoseconds: UInt64
    /// When it ended, in nanoseconds since the epoch.
    public var endNanoseconds: UInt64

    /// Creates a recorded span, for example to render spans from another tracer with ``TraceWaterfall``.
    /// - Parameters:
    ///   - operationName: The span's name.
    ///   - kind: The span's kind.
    ///   - traceID: The trace id.
    ///   - spanID: The span id.
    ///   - parentSpanID: The parent's span id, `nil` for a root.
    ///   - links: The span's links.
    ///   - attributes: The span's attributes.
    ///   - status: The span's status.
    ///   - errors: The errors recorded, described.
    ///   - eventNames: The names of the span's events.
    ///   - startNanoseconds: Start, nanoseconds since the epoch.
    ///   - endNanoseconds: End, nanoseconds since the epoch.
    public init(
        operationName: String,
        kind: SpanKind,
        traceID: String,
        spanID: String,
        parentSpanID: String?,
        links: [Link] = [],
        attributes: SpanAttributes = [:],
        status: SpanStatus? = nil,
        errors: [String] = [],
        eventNames: [String] = [],
        startNanoseconds: UInt64,
        endNanoseconds: UInt64
    ) {
        self.operationName = operationName
        self.kind = kind
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.links = links
        self.attributes = attributes
        self.status = status
        self.errors = errors
        self.eventNames = eventNames
        self.startNanoseconds = startNanoseconds
        self.endNanoseconds = endNanoseconds
    }

    /// How long it lasted.
    public var duration: Duration {
        // Wall-clock instants: a clock stepped back gives zero, not a wrapped difference.
        .nanoseconds(Int64(clamping: endNanoseconds > startNanoseconds ? endNanoseconds - startNanoseconds : 0))
    }

    /// Whether this span is a root (no parent).
    public var isRoot: Bool { parentSpanID == nil }

    /// Whether `other` is this span's parent: same trace, and `other`'s span id is this span's parent id.
    /// - Parameter other: The would-be parent.
    public func isChild(of other: RecordedSpan) -> Bool {
        traceID == other.traceID && parentSpanID == other.spanID
    }

    /// Whether this span links to `other`.
    /// - Parameter other: The would-be linked span.
    public func links(to other: RecordedSpan) -> Bool {
        links.contains { $0.traceID == other.traceID && $0.spanID == other.spanID }
    }

    /// Whether both spans belong to one trace.
    /// - Parameter other: The other span.
    public func sharesTrace(with other: RecordedSpan) -> Bool { traceID == other.traceID }

    /// A string attribute's value, if it is set and a string.
    /// - Parameter name: The attribute's name.
    public func string(_ name: String) -> String? {
        guard case .string(let value) = attributes.get(name) else { return nil }
        return value
    }

    /// An integer attribute's value, if it is set and an integer.
    /// - Parameter name: The attribute's name.
    public func int(_ name: String) -> Int64? {
        switch attributes.get(name) {
        case .int64(let value): return value
        case .int32(let value): return Int64(value)
        default: return nil
        }
    }
}
