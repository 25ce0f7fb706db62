import Synchronization
import Tracing

/// `InstrumentationSystem.tracer`, without its per-call cost.
///
/// swift-distributed-tracing 1.7.3 resolves the tracer on every call: the task-local override of `withTracer`, else
/// the bootstrapped instrument under a reader lock, then two dynamic casts to `any Tracer` (4,600 instructions of a
/// traced record's send). The instrument is bootstrapped once per process, so this keeps the tracer found for the
/// last instrument seen, by the instrument's identity: each call still reads `InstrumentationSystem.instrument`
/// (the task-local override first, so `withTracer` is honoured) and resolves again only when it is another
/// instrument. Identity is the object of an instrument that is a class (swift-otel's tracer is one); an instrument
/// that is a value is resolved each time, except the no-op one. Comparing costs no dynamic cast: the instrument's
/// type, then the reference the existential holds.
enum GlobalTracer {
    private final class Resolved: @unchecked Sendable {
        /// The instrument the tracer was found in; held, so its object cannot be freed and its address reused.
        let instrument: any Instrument
        let type: ObjectIdentifier
        let object: UInt
        let tracer: any Tracer

        init(instrument: any Instrument, type: ObjectIdentifier, object: UInt, tracer: any Tracer) {
            self.instrument = instrument
            self.type = type
            self.object = object
            self.tracer = tracer
        }
    }

    private struct State: @unchecked Sendable {
        var resolved: Resolved?
        /// The last instrument type asked about, and whether it is a class.
        var lastType: ObjectIdentifier?
        var lastTypeIsClass = false
    }

    private static let state = Mutex(State())

    /// The tracer `InstrumentationSystem.tracer` would return now.
    static var current: any Tracer {
        let instrument = InstrumentationSystem.instrument
        let type = Swift.type(of: instrument)
        if type == NoOpInstrument.self || type == NoOpTracer.self { return NoOpTracer() }
        let typeID = ObjectIdentifier(type)
        // The first word of the existential's buffer: the reference, when the instrument is a class instance.
        let word = withUnsafeBytes(of: instrument) { $0.load(as: UInt.self) }
        enum Lookup { case hit(any Tracer), miss(isClass: Bool), unknownType }
        let lookup: Lookup = state.withLock { state in
            if let resolved = state.resolved, resolved.type == typeID, resolved.object == word { return .hit(resolved.tracer) }
            return state.lastType == typeID ? .miss(isClass: state.lastTypeIsClass) : .unknownType
        }
        let isClass: Bool
        switch lookup {
        case .hit(let tracer): return tracer
        case .miss(let known): isClass = known
        case .unknownType: isClass = type is AnyObject.Type
        }
        // A multiplexing instrument holds its tracer inside; the library's own resolution finds it.
        let tracer = (instrument as? any Tracer) ?? InstrumentationSystem.tracer
        state.withLock { state in
            state.lastType = typeID
            state.lastTypeIsClass = isClass
            if isClass { state.resolved = Resolved(instrument: instrument, type: typeID, object: word, tracer: tracer) }
        }
        return tracer
    }
}
