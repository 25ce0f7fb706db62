import BenchmarkSupport
import CRdKafkaBench
import Foundation
import Synchronization

/// The limit on this machine: librdkafka's C API driven from Swift with no wrapper, no tracing, no headers.
enum RawLibrdkafka {
    /// Counts delivery reports; set as the configuration's opaque.
    final class Deliveries: Sendable {
        let delivered = Atomic(0)
        let failed = Atomic(0)
        var total: Int { delivered.load(ordering: .relaxed) + failed.load(ordering: .relaxed) }
    }

    /// A producer whose delivery reports are counted in `deliveries` (which must outlive it), and its topic handle.
    static func producer(_ bootstrap: String, topic: String, linger: String, deliveries: Deliveries) -> (OpaquePointer, OpaquePointer) {
        let conf = rdConfiguration([("bootstrap.servers", bootstrap), ("linger.ms", linger), ("partitioner", "murmur2_random")])
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(deliveries).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            let deliveries = Unmanaged<Deliveries>.fromOpaque(opaque!).takeUnretainedValue()
            if message!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                deliveries.delivered.add(1, ordering: .relaxed)
            } else {
                deliveries.failed.add(1, ordering: .relaxed)
            }
        }
        var errstr = [CChar](repeating: 0, count: 512)
        let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count)!
        return (handle, rd_kafka_topic_new(handle, topic, nil)!)
    }

    static func destroy(_ handle: OpaquePointer, _ rkt: OpaquePointer) {
        rd_kafka_topic_destroy(rkt)
        rd_kafka_destroy(handle)
    }

    /// Where delivery reports are served.
    enum Reports {
        /// By the producing loop itself, `rd_kafka_poll(handle, 0)` after each record: librdkafka's fastest shape.
        case inLoop
        /// By a second thread blocked in `rd_kafka_poll`, TracedKafka's shape (senders await their reports and
        /// never poll); the loop only produces, and sleeps 1 ms when the queue is full.
        case onPollThread
    }

    /// Produces `count` records of `value` to `topic`, round-robin over `partitions`, and waits for every delivery
    /// report.
    /// - Returns: The time from the first produce call to the last report.
    static func produce(bootstrap: String, topic: String, partitions: Int, count: Int, value: [UInt8], reports: Reports = .inLoop) -> Duration {
        let deliveries = Deliveries()
        let (handle, rkt) = producer(bootstrap, topic: topic, linger: "5", deliveries: deliveries)
        defer { destroy(handle, rkt) }
        let poller = reports == .onPollThread ? PollThread(handle) : nil
        defer { poller?.stop() }
        // One record first, untimed: the connection and the topic's metadata, as every run does before its clock.
        value.withUnsafeBytes { bytes in
            _ = rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, nil, 0, nil)
        }
        while deliveries.total < 1 { if poller == nil { rd_kafka_poll(handle, 10) } else { usleep(1000) } }
        let clock = ContinuousClock()
        let start = clock.now
        value.withUnsafeBytes { bytes in
            var sent = 0
            while sent < count {
                let result = rd_kafka_produce(rkt, Int32(sent % partitions), RD_KAFKA_MSG_F_COPY, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, nil, 0, nil)
                if result == 0 {
                    sent += 1
                    if poller == nil { rd_kafka_poll(handle, 0) }
                } else if poller == nil {
                    rd_kafka_poll(handle, 10)  // queue full: serve reports
                } else {
                    usleep(1000)
                }
            }
        }
        while deliveries.total < count + 1 {
            if poller == nil { rd_kafka_poll(handle, 10) } else { usleep(1000) }
        }
        let elapsed = clock.now - start
        precondition(deliveries.failed.load(ordering: .relaxed) == 0, "raw producer: failed deliveries")
        return elapsed
    }

    /// A thread serving a producer's delivery reports until stopped.
    final class PollThread: @unchecked Sendable {
        private let stopped = Atomic(false)
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: OpaquePointer) {
            let address = UInt(bitPattern: handle)
            Thread { [self] in
                let handle = OpaquePointer(bitPattern: address)!
                while !stopped.load(ordering: .relaxed) { rd_kafka_poll(handle, 100) }
                done.signal()
            }.start()
        }

        func stop() {
            stopped.store(true, ordering: .relaxed)
            done.wait()
        }
    }

    /// Reads `count` messages of `topic` from the beginning in a new group with a bare poll loop.
    /// - Returns: The time from the first message to the last, and the longest pause between two messages.
    static func consume(bootstrap: String, topic: String, group: String, count: Int) -> ConsumeTiming {
        let handle = rawSubscribedConsumer(bootstrap: bootstrap, topic: topic, group: group)
        let clock = ContinuousClock()
        var timing = ConsumeTiming()
        var received = 0
        var idle = 0
        var errors = 0
        while received < count {
            guard let message = rd_kafka_consumer_poll(handle, 100) else {
                idle += 1
                precondition(idle < 300, "raw consumer: only \(received) of \(count) messages arrived (is the topic big enough?)")
                continue
            }
            idle = 0
            if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                timing.record(clock.now)
                received += 1
            } else {
                errors += 1
                if errors <= 5 { FileHandle.standardError.write(Data("raw consumer: \(String(cString: rd_kafka_err2str(message.pointee.err)))\n".utf8)) }
            }
            rd_kafka_message_destroy(message)
        }
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
        return timing
    }

    /// The client's own cost per record, with nothing sent: `count` records to a broker that is never reached
    /// (127.0.0.1:1), through `rd_kafka_producev` alone and through `rd_kafka_produce` + `rd_kafka_poll(0)`, each on
    /// a fresh handle. `count` must stay below librdkafka's queue (100,000 messages).
    static func offlineProduce(count: Int, value: [UInt8]) -> (producev: Duration, producePoll: Duration) {
        func timed(_ body: (OpaquePointer, OpaquePointer, UnsafeRawBufferPointer) -> Void) -> Duration {
            let (handle, rkt) = producer("127.0.0.1:1", topic: "offline", linger: "5", deliveries: Deliveries())
            defer {
                rd_kafka_purge(handle, RD_KAFKA_PURGE_F_QUEUE)  // nothing can be delivered: drop it, do not wait
                destroy(handle, rkt)
            }
            let clock = ContinuousClock()
            let start = clock.now
            value.withUnsafeBytes { body(handle, rkt, $0) }
            return clock.now - start
        }
        let producev = timed { handle, _, bytes in
            for index in 0..<count {
                withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 4) { args in
                    "offline".withCString { topic in
                        args[0].vtype = RD_KAFKA_VTYPE_TOPIC; args[0].u.cstr = topic
                        args[1].vtype = RD_KAFKA_VTYPE_PARTITION; args[1].u.i32 = Int32(index % 16)
                        args[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS; args[2].u.i = RD_KAFKA_MSG_F_COPY
                        args[3].vtype = RD_KAFKA_VTYPE_VALUE
                        args[3].u.mem.ptr = UnsafeMutableRawPointer(mutating: bytes.baseAddress); args[3].u.mem.size = bytes.count
                        if let error = rd_kafka_produceva(handle, args.baseAddress, 4) { fatalError("producev: \(rd_kafka_error_code(error))") }
                    }
                }
            }
        }
        let producePoll = timed { handle, rkt, bytes in
            for index in 0..<count {
                let result = rd_kafka_produce(rkt, Int32(index % 16), RD_KAFKA_MSG_F_COPY, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, nil, 0, nil)
                precondition(result == 0, "produce refused a record")
                rd_kafka_poll(handle, 0)
            }
        }
        return (producev, producePoll)
    }

    /// The sum of `topic`'s high watermarks over `partitions` partitions: how many records the broker has taken.
    static func highWatermarks(bootstrap: String, topic: String, partitions: Int) -> Int64 {
        let deliveries = Deliveries()
        let (handle, rkt) = producer(bootstrap, topic: topic, linger: "0", deliveries: deliveries)
        defer { destroy(handle, rkt) }
        var sum: Int64 = 0
        for partition in 0..<partitions {
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(handle, topic, Int32(partition), &low, &high, 10_000)
            precondition(err == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of \(topic)[\(partition)]: \(String(cString: rd_kafka_err2str(err)))")
            sum += high
        }
        return sum
    }

    /// `samples` sequential produce → delivery-report round trips.
    static func ackLatencies(bootstrap: String, topic: String, samples: Int, value: [UInt8]) -> [Duration] {
        let deliveries = Deliveries()
        let (handle, rkt) = producer(bootstrap, topic: topic, linger: "0", deliveries: deliveries)
        defer { destroy(handle, rkt) }
        let clock = ContinuousClock()
        var result: [Duration] = []
        value.withUnsafeBytes { bytes in
            for index in 0..<(samples + 100) {
                let start = clock.now
                _ = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, nil, 0, nil)
                let target = deliveries.total + 1
                while deliveries.total < target { rd_kafka_poll(handle, 1) }
                if index >= 100 { result.append(clock.now - start) }  // the first 100 warm the connection up
            }
        }
        return result
    }
}

/// When a consume run's messages arrived: the span from the first to the last, and the longest pause between two.
struct ConsumeTiming {
    private(set) var first: ContinuousClock.Instant?
    private(set) var last: ContinuousClock.Instant?
    private(set) var longestPause = Duration.zero

    var elapsed: Duration { last! - first! }
    /// The time without the longest pause: the steady rate, apart from one stall of librdkafka's mock broker's
    /// fetching (0.4–0.9 s, at no fixed point; seen in traced and in raw runs).
    var steadyElapsed: Duration { elapsed - longestPause }

    mutating func record(_ now: ContinuousClock.Instant) {
        if first == nil { first = now }
        if let last { longestPause = max(longestPause, now - last) }
        last = now
    }
}
