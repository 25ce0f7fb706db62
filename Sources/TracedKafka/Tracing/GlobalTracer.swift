import Tracing

/// `InstrumentationSystem.tracer`, at a fraction of its cost.
///
/// swift-distributed-tracing resolves the tracer on every call by searching the instrument and casting the
/// existential it holds to `any Tracer`. This reads the same instrument (`withTracer`'s task-local override first,
/// so that is honoured) and casts it once it is opened, when its type is known: the runtime then finds the
/// conformance in its cache directly. Only an instrument that is no tracer itself (a multiplexing one) goes through
/// the library's own search.
enum GlobalTracer {
    /// The tracer `InstrumentationSystem.tracer` would return now.
    static var current: any Tracer { tracer(in: InstrumentationSystem.instrument) }

    private static func tracer<Instrument: Tracing.Instrument>(in instrument: Instrument) -> any Tracer {
        if Instrument.self == NoOpInstrument.self { return NoOpTracer() }
        return instrument as? any Tracer ?? InstrumentationSystem.tracer
    }
}
