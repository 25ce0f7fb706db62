// otel-cost: what a record costs with swift-otel, the tracer services run, against raw librdkafka.
//
//   otel-cost produce --bootstrap B --topic T --count N --mode M [--partitions 16] [--linger-ms 5] [--senders S] [--value array|string|data]
//       raw          rd_kafka_produceva, no header
//       raw-header   rd_kafka_produceva with one 55-byte traceparent header (the bytes a traced record carries)
//       off          KafkaProducer.enqueue, tracing off
//       unsampled    enqueue with swift-otel bootstrapped, sampler traceidratio 0: spans dropped, context still written
//       sampled      enqueue with swift-otel bootstrapped, every span sampled and exported over OTLP/HTTP
//       null-unsampled / null-sampled   enqueue with a tracer that does no work (a shared span, a constant
//                    traceparent): what remains is the library's own share of a traced record
//       --value K:   the value as an array (default), a String or Data, kept by the record without a copy
//       --rate R:    at most R records a second (enqueue and raw*), paced in 1 ms steps
//       --ratio P:   sampled mode samples with swift-otel's traceidratio P (default 1: always on); the spans
//                    counted are those the tracer sampled (the library's attribute hooks run for those only)
//       --senders S: S tasks each awaiting `send` instead of one loop of `enqueue`; for raw*, at most S records
//                    without their delivery report (what S awaiting senders allow)
//       --enqueuers E: E tasks each running a loop of `enqueue` over its share of the records, at once (TracedKafka
//                    modes only): what concurrent senders cost per record against one
//   otel-cost consume --bootstrap B --topic T --count N --mode off|unsampled|sampled|null-unsampled|null-sampled
//       reads N records (made by `produce --mode raw-header`) in a new group with `consumer.run { }`
//
// One line per run: "<mode> <count> msg/s <rate> cpu-us <user+sys µs per record> spans <spans the run ended>
// otel-shutdown-ms <time the exporter took to flush at shutdown>". swift-otel reads the OTEL_* variables as a service
// would (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE).
// The work runs in a task while the main thread waits on a semaphore, so the program runs under
// `valgrind --tool=callgrind` (which crashes on a main thread in dispatch_main). Benchmarks/otel-cost drives it.
import BenchmarkSupport
import Foundation
import Logging
import OTel
import ServiceLifecycle
import Synchronization
import TracedKafka
import Tracing

/// A tracer that does no work: one shared span, a constant `traceparent` written, headers read but not parsed.
/// Bootstrapped like a
/// real tracer (and, like swift-otel's, a class), so the library finds it as it finds swift-otel's.
final class NullTracer: Tracer {
    let span: NullSpan
    static let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    init(recording: Bool) { span = NullSpan(isRecording: recording) }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> NullSpan { span }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        injector.inject(Self.traceparent, forKey: "traceparent", into: &carrier)
    }

    /// Asks for what a W3C propagator asks for (the library validates each header it is asked for), and marks the
    /// context as carrying a span when a `traceparent` came back, so the library links to it as it would.
    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        guard extractor.extract(key: "traceparent", from: carrier) != nil else { return }
        _ = extractor.extract(key: "tracestate", from: carrier)
        context[NullSpanKey.self] = true
    }
}

/// What the null tracer's `extract` leaves in a context.
enum NullSpanKey: InstrumentationContextKey {
    typealias Value = Bool
}

/// The null tracer's span: takes everything, keeps nothing.
final class NullSpan: Span, Sendable {
    let isRecording: Bool
    init(isRecording: Bool) { self.isRecording = isRecording }
    var context: InstrumentationContext { .topLevel }
    var operationName: String { get { "" } set {} }
    var attributes: SpanAttributes { get { [:] } set {} }
    func setStatus(_ status: SpanStatus) {}
    func addEvent(_ event: SpanEvent) {}
    func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {}
    func addLink(_ link: SpanLink) {}
    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {}
}

/// swift-otel, bootstrapped as a service does: tracing only, its batch span processor and OTLP/HTTP exporter.
func bootstrapOTel(sampled: Bool, ratio: Double) throws -> ServiceGroup {
    var configuration = OTel.Configuration.default
    configuration.serviceName = "otel-cost"
    configuration.diagnosticLogLevel = .error
    configuration.metrics.enabled = false
    configuration.logs.enabled = false
    configuration.traces.sampler = !sampled ? .traceIDRatio(ratio: 0)! : ratio >= 1 ? .alwaysOn : .traceIDRatio(ratio: ratio)!
    configuration.traces.exporter = .otlp
    configuration.traces.otlpExporter.protocol = .httpProtobuf
    let service = try OTel.bootstrap(configuration: configuration)
    return ServiceGroup(configuration: .init(services: [.init(service: service)], logger: Logger(label: "otel-cost")))
}

/// Every produced record's 100-byte value, as the kind of bytes `--value` names: what a service holds when it sends.
enum ValueKind {
    case array([UInt8])
    case string(String)
    case data(Data)

    init?(_ name: String) {
        switch name {
        case "array": self = .array([UInt8](repeating: 0x61, count: 100))
        case "string": self = .string(String(repeating: "a", count: 100))
        case "data": self = .data(Data(repeating: 0x61, count: 100))
        default: return nil
        }
    }

    /// The bytes, for raw librdkafka (read in place, as the library reads them).
    var bytes: any KafkaContiguousBytes {
        switch self {
        case .array(let array): array
        case .string(let text): text
        case .data(let data): data
        }
    }

}

/// How many send and process spans were sampled: the hooks run for recording spans only.
let sampledSpans = Atomic<Int>(0)

/// The tracing a mode runs with. In sampled mode the hooks count the sampled spans (exact, whatever the ratio).
func tracing(for mode: String) -> KafkaTracingConfiguration {
    switch mode {
    case "off": return .disabled
    case "sampled":
        var tracing = KafkaTracingConfiguration.enabled
        tracing.sendAttributes = { _, _ in sampledSpans.add(1, ordering: .relaxed) }
        tracing.processAttributes = { _, _ in sampledSpans.add(1, ordering: .relaxed) }
        return tracing
    default: return .enabled  // swift-otel's or the null tracer, through InstrumentationSystem
    }
}

/// Wall clock and process CPU between `start()` and `line(count:)`.
struct Stopwatch {
    private let clock = ContinuousClock()
    private var started = ContinuousClock.now
    private var cpu = Duration.zero

    mutating func start() {
        started = clock.now
        cpu = processCPU()
    }

    func line(_ mode: String, count: Int) -> String {
        let elapsed = seconds(clock.now - started), used = seconds(processCPU() - cpu)
        return String(format: "%@ %d msg/s %.0f cpu-us %.3f", mode, count, Double(count) / max(elapsed, 1e-9), used * 1e6 / Double(count))
    }
}

/// Sends `count` records of 100 bytes round-robin over the partitions, after one untimed warm-up record.
struct TracedProduce {
    let mode: String, bootstrap: String, topic: String
    let count: Int, partitions: Int, linger: Int, senders: Int, enqueuers: Int
    let rate: Int?

    /// Runs with the value as its own type, so that the loop making records is specialized for it, as a service's is.
    func run(_ value: ValueKind) async throws -> String {
        switch value {
        case .array(let array): try await run(array)
        case .string(let text): try await run(text)
        case .data(let data): try await run(data)
        }
    }

    func run<Value: KafkaContiguousBytes>(_ value: Value) async throws -> String {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(
            bootstrapServers: [bootstrap], linger: .milliseconds(linger), tracing: tracing(for: mode), metrics: .disabled
        ))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await producer.run() }
            try await producer.send(KafkaProducerRecord(topic: topic, value: value, partition: 0))
            var stopwatch = Stopwatch()
            stopwatch.start()
            if senders > 0 {
                try await concurrently(senders) { index in
                    try await producer.send(KafkaProducerRecord(topic: topic, value: value, partition: index % partitions))
                }
            } else if enqueuers > 1 {
                try await concurrently(enqueuers) { index in
                    try await producer.enqueue(KafkaProducerRecord(topic: topic, value: value, partition: index % partitions))
                }
                try await producer.flush(timeout: .seconds(300))
            } else {
                var pacer = Pacer(rate: rate)
                for index in 0..<count {
                    if let delay = pacer.delay(before: index) { try await Task.sleep(for: delay) }
                    try await producer.enqueue(KafkaProducerRecord(topic: topic, value: value, partition: index % partitions))
                }
                try await producer.flush(timeout: .seconds(300))
            }
            let line = stopwatch.line(mode, count: count)
            producer.triggerGracefulShutdown()
            try await group.waitForAll()
            return line
        }
    }
}

extension TracedProduce {
    /// Runs `body` for every record index, split over `tasks` tasks that run at once (task `t` takes `t`, `t + tasks`, …).
    func concurrently(_ tasks: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask { for index in stride(from: task, to: count, by: tasks) { try await body(index) } }
            }
            try await group.waitForAll()
        }
    }
}

/// Reads `count` records in a new group with the handler API.
func consumeTraced(mode: String, bootstrap: String, topic: String, count: Int) async throws -> String {
    let meter = Meter(target: count)
    let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
        bootstrapServers: [bootstrap], groupID: "otel-cost-\(mode)-\(getpid())", topics: [topic], autoOffsetReset: .earliest,
        tracing: tracing(for: mode), metrics: .disabled, properties: ["session.timeout.ms": "6000"]
    ))
    try await consumer.run { _ in
        if meter.tick() { consumer.triggerGracefulShutdown() }
    }
    return meter.report(mode)
}

guard let command = CommandLine.arguments.dropFirst().first, let bootstrap = argument("bootstrap"), let topic = argument("topic"),
    let count = argument("count").flatMap(Int.init), let mode = argument("mode")
else { fail("usage: otel-cost produce|consume --bootstrap B --topic T --count N --mode M [--partitions P] [--linger-ms L] [--senders S]") }
let partitions = argument("partitions").flatMap(Int.init) ?? 16

let modes = command == "produce" ? ["raw", "raw-header", "off", "unsampled", "sampled", "null-unsampled", "null-sampled"]
    : ["off", "unsampled", "sampled", "null-unsampled", "null-sampled"]
guard command == "produce" || command == "consume" else { fail("unknown command \(command): produce or consume") }
guard modes.contains(mode) else { fail("unknown \(command) mode \(mode): one of \(modes.joined(separator: ", "))") }

guard let valueKind = ValueKind(argument("value") ?? "array") else { fail("unknown --value: array, string or data") }

let done = DispatchSemaphore(value: 0)
Task.detached {
    do {
        let ratio = argument("ratio").flatMap(Double.init) ?? 1
        let otel = mode == "sampled" || mode == "unsampled" ? try bootstrapOTel(sampled: mode == "sampled", ratio: ratio) : nil
        if mode.hasPrefix("null-") { InstrumentationSystem.bootstrap(NullTracer(recording: mode == "null-sampled")) }
        let line: String = try await withThrowingTaskGroup(of: Void.self) { group in
            if let otel { group.addTask { try await otel.run() } }
            var line: String
            switch (command, mode) {
            case ("produce", "raw"), ("produce", "raw-header"):
                var stopwatch = Stopwatch()
                stopwatch.start()
                rawProduce(bootstrap: bootstrap, topic: topic, count: count, partitions: partitions, value: valueKind.bytes,
                           header: mode == "raw" ? nil : sampledTraceparent, linger: argument("linger-ms").flatMap(Int.init) ?? 5,
                           inFlight: argument("senders").flatMap(Int.init), rate: argument("rate").flatMap(Int.init))
                line = stopwatch.line(mode, count: count)
            case ("produce", _):
                line = try await TracedProduce(mode: mode, bootstrap: bootstrap, topic: topic, count: count, partitions: partitions,
                                               linger: argument("linger-ms").flatMap(Int.init) ?? 5,
                                               senders: argument("senders").flatMap(Int.init) ?? 0,
                                               enqueuers: argument("enqueuers").flatMap(Int.init) ?? 1,
                                               rate: argument("rate").flatMap(Int.init)).run(valueKind)
                if mode == "sampled" { line += " spans \(sampledSpans.load(ordering: .relaxed))" }  // the warm-up record's too
            case ("consume", _):
                line = try await consumeTraced(mode: mode, bootstrap: bootstrap, topic: topic, count: count)
                if mode == "sampled" { line += " spans \(sampledSpans.load(ordering: .relaxed))" }
            default:
                fail("unknown command or mode: \(command) \(mode)")
            }
            if let otel {
                // A service's graceful shutdown: swift-otel exports what it still holds.
                let clock = ContinuousClock(), before = clock.now, cpu = processCPU()
                await otel.triggerGracefulShutdown()
                try await group.waitForAll()
                line += String(format: " otel-shutdown-ms %.0f otel-shutdown-cpu-ms %.0f", seconds(clock.now - before) * 1000,
                               seconds(processCPU() - cpu) * 1000)
            }
            return line
        }
        print(line)
    } catch {
        fail("\(command) \(mode): \(error)")
    }
    done.signal()
}
done.wait()
