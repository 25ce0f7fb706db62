// consume-cost: what one consumed message costs, TracedKafka's consumer against a raw librdkafka poll loop.
//
//   consume-cost produce --bootstrap B --topic T --count N [--partitions P]
//       N records of 100 bytes round-robin over P partitions, each with a sampled W3C `traceparent` header
//   consume-cost consume --bootstrap B --topic T --count N --mode raw|off|lagging|sampled [--group G] [--properties k=v,…]
//       reads the N records in a new group from the earliest offset and prints one line (`lagging`: tracing off,
//       the handler busy for 2 µs a message, so the consumer runs behind librdkafka's fetcher):
//       "<mode> <count> msg/s <rate without the longest pause> pause-ms <longest pause> cpu-us <user+sys µs per message>"
//
// The work runs in a task while the main thread waits on a semaphore, so the program runs under
// `valgrind --tool=callgrind` (which crashes on a main thread in dispatch_main). Benchmarks/consume-cost drives it.
import CRdKafkaBench
import Foundation
import Synchronization
import TracedKafka
import TracedKafkaTesting

func argument(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("consume-cost: \(message)\n".utf8))
    exit(2)
}

/// User + system CPU time of the whole process so far.
func processCPU() -> Duration {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func duration(_ time: timeval) -> Duration { .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec)) }
    return duration(usage.ru_utime) + duration(usage.ru_stime)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The steady part of a run: first to last message, the longest pause between two, and the CPU used in between.
final class Meter: @unchecked Sendable {
    private let lock = NSLock()
    private let clock = ContinuousClock()
    private var count = 0
    private var first: ContinuousClock.Instant?
    private var last: ContinuousClock.Instant?
    private var longestPause = Duration.zero
    private var cpuAtFirst = Duration.zero
    private var cpuAtLast = Duration.zero
    let target: Int

    init(target: Int) { self.target = target }

    /// One message arrived; returns whether it was the last one wanted.
    func tick() -> Bool {
        let now = clock.now
        return lock.withLock {
            count += 1
            if first == nil {
                first = now
                cpuAtFirst = processCPU()
            }
            if let last { longestPause = max(longestPause, now - last) }
            last = now
            if count == target { cpuAtLast = processCPU() }
            return count == target
        }
    }

    func report(_ mode: String) -> String {
        lock.withLock {
            let elapsed = (last ?? clock.now) - (first ?? clock.now)
            let steady = max(seconds(elapsed - longestPause), 1e-9)
            let perMessage = seconds(cpuAtLast - cpuAtFirst) * 1e6 / Double(max(1, count - 1))
            return String(format: "%@ %d msg/s %.0f pause-ms %.1f cpu-us %.3f", mode, count, Double(count - 1) / steady,
                          seconds(longestPause) * 1000, perMessage)
        }
    }
}

func rdConfiguration(_ properties: [(String, String)]) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errstr = [CChar](repeating: 0, count: 512)
    for (name, value) in properties where rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
        fail("\(name)=\(value) refused")
    }
    return conf
}

/// Produces with raw librdkafka (the header is a sampled traceparent, as a traced service would send).
func produce(bootstrap: String, topic: String, count: Int, partitions: Int) {
    let conf = rdConfiguration([("bootstrap.servers", bootstrap), ("linger.ms", "5")])
    var errstr = [CChar](repeating: 0, count: 512)
    let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count)!
    let value = [UInt8](repeating: 0x61, count: 100)
    let traceparent = Array("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".utf8)
    for index in 0..<count {
        while true {
            let headers = rd_kafka_headers_new(1)!
            _ = traceparent.withUnsafeBytes { rd_kafka_header_add(headers, "traceparent", -1, $0.baseAddress, $0.count) }
            let err = value.withUnsafeBytes { bytes in
                withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 5) { args in
                    topic.withCString { name in
                        args[0].vtype = RD_KAFKA_VTYPE_TOPIC; args[0].u.cstr = name
                        args[1].vtype = RD_KAFKA_VTYPE_PARTITION; args[1].u.i32 = Int32(index % partitions)
                        args[2].vtype = RD_KAFKA_VTYPE_VALUE
                        args[2].u.mem.ptr = UnsafeMutableRawPointer(mutating: bytes.baseAddress); args[2].u.mem.size = bytes.count
                        args[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS; args[3].u.i = RD_KAFKA_MSG_F_COPY
                        args[4].vtype = RD_KAFKA_VTYPE_HEADERS; args[4].u.headers = headers
                        guard let error = rd_kafka_produceva(handle, args.baseAddress, 5) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                        defer { rd_kafka_error_destroy(error) }
                        return rd_kafka_error_code(error)
                    }
                }
            }
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { break }
            rd_kafka_headers_destroy(headers)
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { fail("produce: \(String(cString: rd_kafka_err2str(err)))") }
            rd_kafka_poll(handle, 10)
        }
        rd_kafka_poll(handle, 0)
    }
    guard rd_kafka_flush(handle, 120_000) == RD_KAFKA_RESP_ERR_NO_ERROR else { fail("produce: flush timed out") }
    rd_kafka_destroy(handle)
}

/// A bare `rd_kafka_consumer_poll` loop with librdkafka's default commits (offsets stored at poll, auto-commit).
func consumeRaw(bootstrap: String, topic: String, group: String, meter: Meter) {
    let conf = rdConfiguration([
        ("bootstrap.servers", bootstrap), ("group.id", group), ("auto.offset.reset", "earliest"), ("session.timeout.ms", "6000"),
    ])
    var errstr = [CChar](repeating: 0, count: 512)
    let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count)!
    rd_kafka_poll_set_consumer(handle)
    let list = rd_kafka_topic_partition_list_new(1)!
    rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
    rd_kafka_subscribe(handle, list)
    rd_kafka_topic_partition_list_destroy(list)
    var done = false
    while !done {
        guard let message = rd_kafka_consumer_poll(handle, 100) else { continue }
        if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR { done = meter.tick() }
        rd_kafka_message_destroy(message)
    }
    rd_kafka_consumer_close(handle)
    rd_kafka_destroy(handle)
}

/// TracedKafka's handler API, the way a service uses it; tracing off, or a sampled process span per message.
func consumeTraced(bootstrap: String, topic: String, group: String, sampled: Bool, busy: Duration, meter: Meter) async throws {
    var properties = ["session.timeout.ms": "6000"]
    for pair in (argument("properties") ?? "").split(separator: ",") {
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 { properties[parts[0]] = parts[1] }
    }
    let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
        bootstrapServers: [bootstrap], groupID: group, topics: [topic],
        tracing: sampled ? KafkaTracingConfiguration(tracer: W3CRecordingTracer(sampler: .always)) : .disabled,
        metrics: .disabled, properties: properties
    ))
    guard busy > .zero else {
        try await consumer.run { _ in
            if meter.tick() { consumer.triggerGracefulShutdown() }
        }
        return
    }
    let clock = ContinuousClock()
    try await consumer.run { _ in
        let until = clock.now + busy
        while clock.now < until {}
        if meter.tick() { consumer.triggerGracefulShutdown() }
    }
}

guard let command = CommandLine.arguments.dropFirst().first, let bootstrap = argument("bootstrap"), let topic = argument("topic"),
    let count = argument("count").flatMap(Int.init)
else { fail("usage: consume-cost produce|consume --bootstrap B --topic T --count N [--partitions P] [--mode raw|off|sampled] [--group G]") }

let done = DispatchSemaphore(value: 0)
Task.detached {
    switch command {
    case "produce":
        produce(bootstrap: bootstrap, topic: topic, count: count, partitions: argument("partitions").flatMap(Int.init) ?? 16)
    case "consume":
        let mode = argument("mode") ?? "off"
        let group = argument("group") ?? "cost-\(mode)-\(getpid())"
        let meter = Meter(target: count)
        switch mode {
        case "raw": consumeRaw(bootstrap: bootstrap, topic: topic, group: group, meter: meter)
        case "off", "lagging", "sampled":
            do {
                try await consumeTraced(bootstrap: bootstrap, topic: topic, group: group, sampled: mode == "sampled",
                                        busy: mode == "lagging" ? .microseconds(2) : .zero, meter: meter)
            } catch { fail("consume: \(error)") }
        default: fail("--mode takes raw, off, lagging or sampled")
        }
        print(meter.report(mode))
    default:
        fail("the command is produce or consume")
    }
    done.signal()
}
done.wait()
