import Synchronization
import Tracing

/// `InstrumentationSystem.tracer`, without its per-call cost.
///
/// swift-distributed-tracing resolves the tracer on every call: the task-local override of `withTracer`, else the
/// bootstrapped instrument under a reader lock, then two dynamic casts to `any Tracer`. The instrument is
/// bootstrapped once per process, so this keeps the tracer found for the last instrument seen when that instrument
/// is a class instance (swift-otel's tracer is one), and knows it again by its object identity: each call still
/// reads `InstrumentationSystem.instrument` (the task-local override first, so `withTracer` is honoured) and
/// resolves again only for another instrument. An instrument that is a value is resolved each time, except the
/// no-op ones.
enum GlobalTracer {
    private struct Resolved: Sendable {
        /// The identity of the instrument's object.
        let id: ObjectIdentifier
        /// The instrument the tracer was found in; held, so its object cannot be freed and its identity reused.
        let instrument: any Tracing.Instrument
        let tracer: any Tracer
    }

    /// The tracer found for the last class instrument seen.
    private static let last = Mutex<Resolved?>(nil)

    /// The tracer `InstrumentationSystem.tracer` would return now.
    static var current: any Tracer { tracer(for: InstrumentationSystem.instrument) }

    /// The tracer of an instrument, opened from its existential so that its type is known without a dynamic cast.
    private static func tracer<Instrument: Tracing.Instrument>(for instrument: Instrument) -> any Tracer {
        if Instrument.self == NoOpInstrument.self || Instrument.self == NoOpTracer.self { return NoOpTracer() }
        guard Instrument.self is AnyObject.Type else { return InstrumentationSystem.tracer }
        let id = ObjectIdentifier(instrument as AnyObject)
        if let tracer = last.withLock({ $0?.id == id ? $0?.tracer : nil }) { return tracer }
        // A multiplexing instrument holds its tracer inside; the library's own resolution finds it.
        let tracer = (instrument as? any Tracer) ?? InstrumentationSystem.tracer
        last.withLock { $0 = Resolved(id: id, instrument: instrument, tracer: tracer) }
        return tracer
    }
}
