import CRdKafkaBench
import Foundation

/// The limit on this machine: librdkafka's C API driven from Swift with no wrapper, no tracing, no headers.
enum RawLibrdkafka {
    /// Counts delivery reports; set as the configuration's opaque.
    final class Deliveries {
        var delivered = 0
        var failed = 0
    }

    static func configuration(_ properties: [(String, String)]) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (name, value) in properties {
            guard rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) == RD_KAFKA_CONF_OK else {
                fatalError("\(name)=\(value): \(String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
            }
        }
        return conf
    }

    /// A producer whose delivery reports are counted in `deliveries` (which must outlive it), and its topic handle.
    static func producer(_ bootstrap: String, topic: String, linger: String, deliveries: Deliveries) -> (OpaquePointer, OpaquePointer) {
        let conf = configuration([("bootstrap.servers", bootstrap), ("linger.ms", linger), ("partitioner", "murmur2_random")])
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(deliveries).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            let deliveries = Unmanaged<Deliveries>.fromOpaque(opaque!).takeUnretainedValue()
            if message!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR { deliveries.delivered += 1 } else { deliveries.failed += 1 }
        }
        var errstr = [CChar](repeating: 0, count: 512)
        let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count)!
        return (handle, rd_kafka_topic_new(handle, topic, nil)!)
    }

    static func destroy(_ handle: OpaquePointer, _ rkt: OpaquePointer) {
        rd_kafka_topic_destroy(rkt)
        rd_kafka_destroy(handle)
    }

    /// Produces `count` records of `value` to `topic` and waits for every delivery report.
    /// - Returns: The time from the first produce call to the last report.
    static func produce(bootstrap: String, topic: String, count: Int, value: [UInt8]) -> Duration {
        let deliveries = Deliveries()
        let (handle, rkt) = producer(bootstrap, topic: topic, linger: "5", deliveries: deliveries)
        defer { destroy(handle, rkt) }
        let clock = ContinuousClock()
        let start = clock.now
        value.withUnsafeBytes { bytes in
            var sent = 0
            while sent < count {
                let result = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, nil, 0, nil)
                if result == 0 {
                    sent += 1
                    rd_kafka_poll(handle, 0)
                } else {
                    rd_kafka_poll(handle, 10)  // queue full: serve reports
                }
            }
        }
        while deliveries.delivered + deliveries.failed < count { rd_kafka_poll(handle, 10) }
        let elapsed = clock.now - start
        precondition(deliveries.failed == 0, "raw producer: \(deliveries.failed) failed deliveries")
        return elapsed
    }

    /// Reads `count` messages of `topic` from the beginning in a new group with a bare poll loop.
    /// - Returns: The time from the first message to the last.
    static func consume(bootstrap: String, topic: String, group: String, count: Int) -> Duration {
        let conf = configuration([
            ("bootstrap.servers", bootstrap), ("group.id", group), ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"), ("session.timeout.ms", "6000"),
        ])
        var errstr = [CChar](repeating: 0, count: 512)
        let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count)!
        rd_kafka_poll_set_consumer(handle)
        let list = rd_kafka_topic_partition_list_new(1)!
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        rd_kafka_subscribe(handle, list)
        rd_kafka_topic_partition_list_destroy(list)
        let clock = ContinuousClock()
        var start: ContinuousClock.Instant?
        var received = 0
        while received < count {
            guard let message = rd_kafka_consumer_poll(handle, 100) else { continue }
            if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                if start == nil { start = clock.now }
                received += 1
            }
            rd_kafka_message_destroy(message)
        }
        let elapsed = clock.now - start!
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
        return elapsed
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
                let target = deliveries.delivered + deliveries.failed + 1
                while deliveries.delivered + deliveries.failed < target { rd_kafka_poll(handle, 1) }
                if index >= 100 { result.append(clock.now - start) }  // the first 100 warm the connection up
            }
        }
        return result
    }
}
