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
/// that is a value is resolved each time, except the no-op one. Comparing costs no dynamic cast and no type lookup:
/// the type the existential holds (its opened type) and the reference it holds.
enum GlobalTracer {
    private final class Resolved: @unchecked Sendable {
        /// The instrument the tracer was found in; held, so its object cannot be freed and its address reused.
        let instrument: any Instrument
        /// The type the instrument's existential holds.
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

    /// The tracer found for the last class instrument seen.
    private static let state = Mutex<Resolved?>(nil)

    /// The tracer `InstrumentationSystem.tracer` would return now.
    static var current: any Tracer {
        let instrument = InstrumentationSystem.instrument
        let (type, word) = identity(of: instrument)
        if type == noOpInstrument || type == noOpTracer { return NoOpTracer() }
        if let tracer = state.withLock({ resolved -> (any Tracer)? in
            guard let resolved, resolved.type == type, resolved.object == word else { return nil }
            return resolved.tracer
        }) {
            return tracer
        }
        return resolve(instrument, type: type, word: word)
    }

    /// The type the instrument's existential holds and the first word of its value (the reference, for a class
    /// instance), read from the opened existential: no dynamic type lookup, no copy of the instrument.
    private static func identity<Value: Instrument>(of instrument: Value) -> (type: ObjectIdentifier, word: UInt) {
        (ObjectIdentifier(Value.self), withUnsafeBytes(of: instrument) { $0.count >= MemoryLayout<UInt>.size ? $0.loadUnaligned(as: UInt.self) : 0 })
    }

    private static let noOpInstrument = ObjectIdentifier(NoOpInstrument.self)
    private static let noOpTracer = ObjectIdentifier(NoOpTracer.self)

    /// The tracer of an instrument not seen last: found by the library's own resolution, and kept when the
    /// instrument is a class instance (its identity then stands for it).
    private static func resolve(_ instrument: any Instrument, type: ObjectIdentifier, word: UInt) -> any Tracer {
        // A multiplexing instrument holds its tracer inside; the library's own resolution finds it.
        let tracer = (instrument as? any Tracer) ?? InstrumentationSystem.tracer
        if Swift.type(of: instrument) is AnyObject.Type {
            state.withLock { $0 = Resolved(instrument: instrument, type: type, object: word, tracer: tracer) }
        }
        return tracer
    }
}
