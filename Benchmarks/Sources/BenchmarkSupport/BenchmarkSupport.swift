// What the cost tools share (consume-cost here, otel-cost in Benchmarks/OTel): arguments, CPU and rate metering, and
// raw librdkafka producing and consuming loops to compare against.
import CRdKafkaBench
import Foundation
import Synchronization
import TracedKafka

/// The value after `--name` on the command line.
public func argument(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

/// `--name k=v,k=v` as a dictionary.
public func propertiesArgument(_ name: String) -> [String: String] {
    var properties: [String: String] = [:]
    for pair in (argument(name) ?? "").split(separator: ",") {
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 { properties[parts[0]] = parts[1] }
    }
    return properties
}

/// Prints `tool: message` to standard error and exits with status 2.
public func fail(_ message: String) -> Never {
    let tool = (CommandLine.arguments.first ?? "benchmark").split(separator: "/").last.map(String.init) ?? "benchmark"
    FileHandle.standardError.write(Data("\(tool): \(message)\n".utf8))
    exit(2)
}

/// User + system CPU time of the whole process so far.
public func processCPU() -> Duration {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func duration(_ time: timeval) -> Duration { .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec)) }
    return duration(usage.ru_utime) + duration(usage.ru_stime)
}

/// A duration in seconds.
public func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The steady part of a run: first to last record, the longest pause between two, and the CPU used in between.
public final class Meter: @unchecked Sendable {
    private let lock = NSLock()
    private let clock = ContinuousClock()
    private var count = 0
    private var first: ContinuousClock.Instant?
    private var last: ContinuousClock.Instant?
    private var longestPause = Duration.zero
    private var cpuAtFirst = Duration.zero
    private var cpuAtLast = Duration.zero
    /// How many records the run wants.
    public let target: Int

    /// A meter for a run of `target` records.
    public init(target: Int) { self.target = target }

    /// One record arrived (or was acknowledged); returns whether it was the last one wanted.
    public func tick() -> Bool {
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

    /// `<mode> <count> msg/s <rate without the longest pause> pause-ms <longest pause> cpu-us <µs per record>`.
    public func report(_ mode: String) -> String {
        lock.withLock {
            let elapsed = (last ?? clock.now) - (first ?? clock.now)
            let steady = max(seconds(elapsed - longestPause), 1e-9)
            let perMessage = seconds(cpuAtLast - cpuAtFirst) * 1e6 / Double(max(1, count - 1))
            return String(format: "%@ %d msg/s %.0f pause-ms %.1f cpu-us %.3f", mode, count, Double(count - 1) / steady,
                          seconds(longestPause) * 1000, perMessage)
        }
    }
}

/// A librdkafka configuration with these properties; exits on a refused one.
public func rdConfiguration(_ properties: [(String, String)]) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errstr = [CChar](repeating: 0, count: 512)
    for (name, value) in properties where rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
        fail("\(name)=\(value): \(String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
    }
    return conf
}

/// Holds a loop to a rate: records go out on schedule in steps of 1 ms, never more than a step ahead.
public struct Pacer {
    @usableFromInline let rate: Int?
    @usableFromInline var start: ContinuousClock.Instant?

    /// - Parameter rate: Records per second, or `nil` for no limit.
    public init(rate: Int?) { self.rate = rate }

    /// How long to wait before record `index` (the first call starts the schedule); `nil` when on time. Inlinable,
    /// so that an unpaced loop pays nothing for it.
    @inlinable
    public mutating func delay(before index: Int) -> Duration? {
        guard let rate, rate > 0, index % max(rate / 1000, 1) == 0 else { return nil }
        let now = ContinuousClock.now
        guard let start else { start = now; return nil }
        let due = start + .seconds(Double(index) / Double(rate))
        return due > now ? due - now : nil
    }
}

/// What raw producing's delivery callback counts; served by `rd_kafka_poll` on the producing thread only.
private final class DeliveryCounter: @unchecked Sendable {
    let body: (@Sendable () -> Void)?
    var delivered = 0
    init(_ body: (@Sendable () -> Void)?) { self.body = body }
}

/// A sampled W3C `traceparent`, as a traced service sends it (55 bytes).
public let sampledTraceparent = Array("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".utf8)

/// Produces `count` records of `value` with raw `rd_kafka_produceva` (`RD_KAFKA_MSG_F_COPY`), round-robin over
/// `partitions`, `rd_kafka_poll(0)` after each, optionally with one `traceparent` header, then flushes. With
/// `inFlight`, never more than that many records wait for their delivery report; with `rate`, at most that many
/// records a second. The value's bytes are read in place
/// (a String's UTF-8, Data's bytes), as the library reads them.
/// - Parameter onDelivered: Called for each acknowledged record, on the producing thread.
public func rawProduce(
    bootstrap: String,
    topic: String,
    count: Int,
    partitions: Int,
    value: some KafkaContiguousBytes = [UInt8](repeating: 0x61, count: 100),
    header: [UInt8]? = sampledTraceparent,
    linger: Int = 5,
    inFlight: Int? = nil,
    rate: Int? = nil,
    onDelivered: (@Sendable () -> Void)? = nil
) {
    let box = DeliveryCounter(onDelivered)
    let conf = rdConfiguration([("bootstrap.servers", bootstrap), ("linger.ms", String(linger))])
    rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(box).toOpaque())
    rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
        guard message!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { fail("raw delivery: \(String(cString: rd_kafka_err2str(message!.pointee.err)))") }
        let box = Unmanaged<DeliveryCounter>.fromOpaque(opaque!).takeUnretainedValue()
        box.delivered += 1  // served by rd_kafka_poll on the producing thread only
        box.body?()
    }
    var errstr = [CChar](repeating: 0, count: 512)
    let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count)!
    var pacer = Pacer(rate: rate)
    for index in 0..<count {
        if let delay = pacer.delay(before: index) {
            usleep(UInt32(delay.components.attoseconds / 1_000_000_000_000) + UInt32(delay.components.seconds) * 1_000_000)
        }
        // At most `inFlight` records without their report, as that many senders each awaiting theirs would have.
        if let inFlight { while index - box.delivered >= inFlight { rd_kafka_poll(handle, 10) } }
        while true {
            let headers = header.map { header in
                let list = rd_kafka_headers_new(1)!
                _ = header.withUnsafeBytes { rd_kafka_header_add(list, "traceparent", -1, $0.baseAddress, $0.count) }
                return list
            }
            let err = value.withUnsafeBytes { bytes in
                withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 5) { args in
                    topic.withCString { name in
                        args[0].vtype = RD_KAFKA_VTYPE_TOPIC; args[0].u.cstr = name
                        args[1].vtype = RD_KAFKA_VTYPE_PARTITION; args[1].u.i32 = Int32(index % partitions)
                        args[2].vtype = RD_KAFKA_VTYPE_VALUE
                        args[2].u.mem.ptr = UnsafeMutableRawPointer(mutating: bytes.baseAddress); args[2].u.mem.size = bytes.count
                        args[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS; args[3].u.i = RD_KAFKA_MSG_F_COPY
                        var used = 4
                        if let headers { args[4].vtype = RD_KAFKA_VTYPE_HEADERS; args[4].u.headers = headers; used = 5 }
                        guard let error = rd_kafka_produceva(handle, args.baseAddress, used) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                        defer { rd_kafka_error_destroy(error) }
                        return rd_kafka_error_code(error)
                    }
                }
            }
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { break }
            if let headers { rd_kafka_headers_destroy(headers) }
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { fail("produce: \(String(cString: rd_kafka_err2str(err)))") }
            rd_kafka_poll(handle, 10)
        }
        rd_kafka_poll(handle, 0)
    }
    guard rd_kafka_flush(handle, 120_000) == RD_KAFKA_RESP_ERR_NO_ERROR else { fail("produce: flush timed out") }
    rd_kafka_destroy(handle)
}

/// A raw consumer in `group`, subscribed to `topic` from the earliest offset, with librdkafka's default committing
/// (auto commit, offsets stored at poll) and its messages served by `rd_kafka_consumer_poll`.
public func rawSubscribedConsumer(bootstrap: String, topic: String, group: String) -> OpaquePointer {
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
    return handle
}

/// A bare `rd_kafka_consumer_poll` loop with librdkafka's default commits (offsets stored at poll, auto-commit),
/// until `meter` has its records.
public func rawConsume(bootstrap: String, topic: String, group: String, meter: Meter) {
    let handle = rawSubscribedConsumer(bootstrap: bootstrap, topic: topic, group: group)
    var done = false
    while !done {
        guard let message = rd_kafka_consumer_poll(handle, 100) else { continue }
        if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR { done = meter.tick() }
        rd_kafka_message_destroy(message)
    }
    rd_kafka_consumer_close(handle)
    rd_kafka_destroy(handle)
}
