// Throughput and notification latency of the file-queue backend.
//
//   swift run -c release file-queue-throughput [records]   (default 200000)
//
// Appends: one producer enqueues `records` records of 100-byte values (no tracing, durability none, as tests use
// it), then flushes; the figure is records / elapsed. Consumption: a new consumer group reads them all back.
// Latency: 2,000 awaited sends, one at a time, to a topic a consumer is already waiting on; the time from just
// before `send` to the consumer's loop receiving the message (p50/p99). The consumer sleeps on inotify, so this
// is the cross-process path too.
import Foundation
import TracedKafka

let sends = 2_000
let records = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 200_000
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fq-bench-\(getpid())").path
defer { try? FileManager.default.removeItem(atPath: directory) }
let backend = KafkaBackend.fileQueue(directory: directory)
let value = [UInt8](repeating: 0x61, count: 100)
let clock = ContinuousClock()

func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }

/// Runs a client's `run()` beside `body`, then shuts it down.
func running<T: Sendable>(run: @escaping @Sendable () async throws -> Void, shutDown: @escaping @Sendable () -> Void, _ body: () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await run() }
        let result = try await body()
        shutDown()
        try await group.waitForAll()
        return result
    }
}

/// The measurements, off the main actor (top-level code runs on it, and hopping to it per await would be measured
/// instead of the queue).
@Sendable func measure() async throws -> (Duration, Duration, [Double]) {
    // Appends.
    let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(tracing: .disabled, backend: backend))
    let appendTime = try await running(run: producer.run, shutDown: producer.triggerGracefulShutdown) {
        let start = clock.now
        for _ in 0..<records {
            try await producer.enqueue(KafkaProducerRecord(topic: "bench", key: nil, value: value, partition: 0))
        }
        try await producer.flush(timeout: .seconds(120))
        return clock.now - start
    }

    // Consumption.
    func consumer(_ group: String, topic: String) throws -> KafkaConsumer {
        try KafkaConsumer(configuration: KafkaConsumerConfiguration(groupID: group, topics: [topic], autoOffsetReset: .earliest, tracing: .disabled, backend: backend))
    }
    let reader = try consumer("bench-read", topic: "bench")
    let consumeTime = try await running(run: reader.run, shutDown: reader.triggerGracefulShutdown) {
        let start = clock.now
        var count = 0
        for try await _ in reader.messages {
            count += 1
            if count == records { break }
        }
        return clock.now - start
    }

    // Notification latency.

    /// Monotonic nanoseconds, comparable across processes.
    func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
    let listener = try consumer("bench-latency", topic: "latency")
    let latencies: [Double] = try await running(run: listener.run, shutDown: listener.triggerGracefulShutdown) {
        let sender = try KafkaProducer(configuration: KafkaProducerConfiguration(tracing: .disabled, backend: backend))
        try KafkaFileQueue.createTopic("latency", partitions: 1, in: directory)
        return try await withThrowingTaskGroup(of: [Double].self) { group in
            group.addTask {
                var result: [Double] = []
                for try await message in listener.messages {
                    // The value starts with the send time.
                    let sentAt = UInt64(message.valueString!.prefix { $0 != " " })!
                    result.append(Double(now() - sentAt) / 1e6)
                    if result.count == sends { break }
                }
                return result
            }
            group.addTask { try await sender.run(); return [] }
            try await Task.sleep(for: .milliseconds(500))  // the consumer owns the partition and sleeps on inotify
            for _ in 0..<sends {
                let stamp = "\(now()) "
                let padded = stamp + String(repeating: "x", count: max(0, 100 - stamp.utf8.count))
                try await sender.send(KafkaProducerRecord(topic: "latency", value: padded))
                try await Task.sleep(for: .milliseconds(1))
            }
            var all: [Double] = []
            for try await part in group {
                all += part
                if !part.isEmpty { sender.triggerGracefulShutdown() }
            }
            return all
        }
    }
    return (appendTime, consumeTime, latencies)
}

let (appendTime, consumeTime, latencies) = try await Task.detached { try await measure() }.value
let sorted = latencies.sorted()
func percentile(_ p: Double) -> String {
    String(format: "%.3f ms", sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
}

print("file queue, \(records) records of 100 bytes, durability none, tracing off")
print(String(format: "appends:     %10.0f records/s  (%.3f s)", Double(records) / seconds(appendTime), seconds(appendTime)))
print(String(format: "consumption: %10.0f records/s  (%.3f s)", Double(records) / seconds(consumeTime), seconds(consumeTime)))
print("send → consumer loop latency over \(sends) sends: p50 \(percentile(0.5)), p99 \(percentile(0.99)), max \(percentile(1.0))")
