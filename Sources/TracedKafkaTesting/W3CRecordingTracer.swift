import Synchronization
import Tracing
import W3CTraceContext

/// A tracer for tests that speaks real W3C Trace Context: it writes and reads `traceparent` and `tracestate`
/// headers (parsed and printed by swift-w3c-trace-context), samples like an OpenTelemetry SDK (a root by the
/// ``Sampler``, a child by its parent's sampled flag) and records every sampled span when it ends.
///
/// ```swift
/// import Testing
/// import TracedKafka
/// import TracedKafkaTesting
/// import Tracing
///
/// @Test func sendsAreTraced() async throws {
///     let cluster = try EmbeddedKafkaCluster()
///     let producer = try KafkaProducer(configuration: .init(bootstrapServers: cluster.bootstrapServerList))
///     let tracer = W3CRecordingTracer()
///     try await withTracer(tracer) { _ = try await producer.send(KafkaProducerRecord(topic: "orders", value: "espresso")) }
///     let send = try #require(tracer.span(named: "send orders"))
///     #expect(send.kind == .producer)
/// }
/// ```
public final class W3CRecordingTracer: Tracer, Sendable {
    /// How root spans are sampled.
    public enum Sampler: Sendable {
        /// Every root is sampled.
        case always
        /// No root is sampled; their context still propagates, with the sampled flag off.
        case never
    }

    /// The span type.
    public typealias Span = W3CRecordingSpan

    private let sampler: Sampler
    private let finished = LockedValue<[RecordedSpan]>([])
    /// The identifier generator, and how many spans were started.
    private let starts = LockedValue((generator: SplitMix64(seed: UInt64.random(in: .min ... .max)), count: 0))

    /// How many spans this tracer has started, ended or not.
    public var startedSpanCount: Int { starts.withLock { $0.count } }

    /// Creates a tracer.
    /// - Parameter sampler: How root spans are sampled.
    public init(sampler: Sampler = .always) {
        self.sampler = sampler
    }

    /// Every sampled span that has ended, in the order they ended.
    public var finishedSpans: [RecordedSpan] { finished.withLock { $0 } }

    /// The first ended span with this name, if any.
    /// - Parameter name: The operation name, for example `send orders`.
    public func span(named name: String) -> RecordedSpan? { finishedSpans.first { $0.operationName == name } }

    /// Every ended span with this name.
    /// - Parameter name: The operation name.
    public func spans(named name: String) -> [RecordedSpan] { finishedSpans.filter { $0.operationName == name } }

    /// Every ended span of one trace.
    /// - Parameter traceID: The trace id, 32 lowercase hex digits.
    public func spans(inTrace traceID: String) -> [RecordedSpan] { finishedSpans.filter { $0.traceID == traceID } }

    /// Forgets every ended span.
    public func reset() { finished.withLock { $0 = [] } }

    func record(_ span: RecordedSpan) { finished.withLock { $0.append(span) } }

    // MARK: - Tracer

    /// Starts a span: a child of the W3C context in `context` if there is one, else a root.
    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> W3CRecordingSpan {
        var spanContext = context()
        let parent = spanContext.w3cTraceContext
        let flags: TraceFlags
        if let parent {
            flags = parent.flags
        } else {
            flags = sampler == .always ? .sampled : []
        }
        // One seeded generator per tracer: `.random()` would ask the kernel for entropy twice per span.
        let (traceID, spanID) = starts.withLock { starts in
            starts.count += 1
            return (parent?.traceID ?? .random(using: &starts.generator), SpanID.random(using: &starts.generator))
        }
        let own = TraceContext(
            traceID: traceID,
            spanID: spanID,
            flags: flags,
            state: parent?.state ?? TraceState()
        )
        spanContext.w3cTraceContext = own
        return W3CRecordingSpan(
            operationName: operationName,
            kind: kind,
            context: spanContext,
            parentSpanID: parent.map { $0.spanID.description },
            start: instant().nanosecondsSinceEpoch,
            tracer: self
        )
    }

    /// Nothing is buffered: spans are recorded as they end.
    public func forceFlush() {}

    /// Writes `traceparent` (and `tracestate` when not empty) for the context's span, if it has one.
    public func inject<Carrier, Inject: Injector>(
        _ context: InstrumentationContext,
        into carrier: inout Carrier,
        using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let trace = context.w3cTraceContext else { return }
        injector.inject(trace.traceParentHeaderValue, forKey: "traceparent", into: &carrier)
        if let state = trace.traceStateHeaderValue {
            injector.inject(state, forKey: "tracestate", into: &carrier)
        }
    }

    /// Reads `traceparent` and `tracestate`; an invalid `traceparent` leaves the context untouched.
    public func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier,
        into context: inout InstrumentationContext,
        using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let parent = extractor.extract(key: "traceparent", from: carrier) else { return }
        let state = extractor.extract(key: "tracestate", from: carrier)
        if let trace = try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: state) {
            context.w3cTraceContext = trace
        } else if let trace = try? TraceContext(traceParentHeaderValue: parent) {
            // A bad tracestate is dropped; the parent still counts.
            context.w3cTraceContext = trace
        }
    }
}

/// A span of the ``W3CRecordingTracer``.
public final class W3CRecordingSpan: Tracing.Span, Sendable {
    private struct State {
        var operationName: String
        var attributes: SpanAttributes = [:]
        var links: [SpanLink] = []
        var errors: [String] = []
        var events: [SpanEvent] = []
        var status: SpanStatus?
        var ended = false
    }

    /// The span's context; `InstrumentationContext.w3cTraceContext` holds its ids.
    public let context: InstrumentationContext
    private let kind: SpanKind
    private let parentSpanID: String?
    private let start: UInt64
    private let tracer: W3CRecordingTracer
    // A Mutex, not a LockedValue (whose NSLock allocates): a span is made per message. One thread at a time uses
    // it, handed on through the client's own locks.
    private let state: Mutex<State>

    init(
        operationName: String,
        kind: SpanKind,
        context: InstrumentationContext,
        parentSpanID: String?,
        start: UInt64,
        tracer: W3CRecordingTracer
    ) {
        self.context = context
        self.kind = kind
        self.parentSpanID = parentSpanID
        self.start = start
        self.tracer = tracer
        self.state = Mutex(State(operationName: operationName))
    }

    /// Whether the span is sampled: only sampled spans record anything.
    public var isRecording: Bool {
        (context.w3cTraceContext?.flags.contains(.sampled) ?? false) && !state.withLock { $0.ended }
    }

    /// The span's name.
    public var operationName: String {
        get { state.withLock { $0.operationName } }
        set { state.withLock { $0.operationName = newValue } }
    }

    /// The span's attributes.
    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { $0.attributes = newValue } }
    }

    /// Sets the span's status.
    public func setStatus(_ status: SpanStatus) { state.withLock { $0.status = status } }

    /// Adds an event.
    public func addEvent(_ event: SpanEvent) { state.withLock { $0.events.append(event) } }

    /// Records an error (its description).
    public func recordError<Instant: TracerInstant>(
        _ error: any Error,
        attributes: SpanAttributes,
        at instant: @autoclosure () -> Instant
    ) {
        state.withLock { $0.errors.append(String(describing: error)) }
    }

    /// Adds a link.
    public func addLink(_ link: SpanLink) { state.withLock { $0.links.append(link) } }

    /// Ends the span; a sampled span is recorded by its tracer. Later calls do nothing.
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        guard let finished = state.withLock({ state -> State? in
            guard !state.ended else { return nil }
            state.ended = true
            return state
        }) else { return }
        guard let trace = context.w3cTraceContext, trace.flags.contains(.sampled) else { return }
        tracer.record(
            RecordedSpan(
                operationName: finished.operationName,
                kind: kind,
                traceID: trace.traceID.description,
                spanID: trace.spanID.description,
                parentSpanID: parentSpanID,
                links: finished.links.compactMap { link in
                    link.context.w3cTraceContext.map {
                        RecordedSpan.Link(traceID: $0.traceID.description, spanID: $0.spanID.description, attributes: link.attributes)
                    }
                },
                attributes: finished.attributes,
                status: finished.status,
                errors: finished.errors,
                eventNames: finished.events.map(\.name),
                startNanoseconds: start,
                endNanoseconds: instant().nanosecondsSinceEpoch
            )
        )
    }
}

extension InstrumentationContext {
    private enum W3CTraceContextKey: InstrumentationContextKey {
        typealias Value = TraceContext
    }

    /// The W3C trace context of the ``W3CRecordingTracer`` span this context belongs to, if any.
    public var w3cTraceContext: TraceContext? {
        get { self[W3CTraceContextKey.self] }
        set { self[W3CTraceContextKey.self] = newValue }
    }
}

/// SplitMix64: a small, fast, well-mixed 64-bit generator. The recording tracer draws span and trace ids from one
/// (seeded from the system's entropy once); tests seed one to make a random run the same every time.
/// Not for secrets: W3C ids need uniqueness, not unpredictability.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator.
    /// - Parameter seed: The starting state; the same seed gives the same sequence.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
