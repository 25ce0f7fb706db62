import Foundation
import Tracing
import TracedKafka
import TracedKafkaTesting

/// TracedKafka under the same loads as ``RawLibrdkafka``.
enum TracedRuns {
    /// How the sends are traced.
    enum Tracing: String {
        /// (b) tracing switched off.
        case off
        /// (c) every send has a span that is not sampled: headers are still written, nothing recorded.
        case unsampled
        /// (d) every send sampled and recorded by the W3C recording tracer.
        case sampled

        var configuration: KafkaTracingConfiguration {
            switch self {
            case .off: return .disabled
            case .unsampled: return KafkaTracingConfiguration(tracer: W3CRecordingTracer(sampler: .never))
            case .sampled: return KafkaTracingConfiguration(tracer: W3CRecordingTracer(sampler: .always))
            }
        }
    }

    static func producer(_ bootstrap: String, tracing: Tracing, linger: Duration = .milliseconds(5)) throws -> KafkaProducer {
        try KafkaProducer(configuration: KafkaProducerConfiguration(
            bootstrapServers: [bootstrap], linger: linger, tracing: tracing.configuration, metrics: .disabled
        ))
    }

    /// `enqueue`s `count` records round-robin over `partitions`, then `flush`es: the same shape as the raw loop.
    /// Checks afterwards that the broker took every record (enqueue reports failures only as events, which this
    /// run does not read: reading them would be measured too).
    static func produce(bootstrap: String, topic: String, partitions: Int, count: Int, value: [UInt8], tracing: Tracing) async throws -> Duration {
        let producer = try producer(bootstrap, tracing: tracing)
        let before = RawLibrdkafka.highWatermarks(bootstrap: bootstrap, topic: topic, partitions: partitions)
        let elapsed = try await withRunning(producer) { producer in
            // One record first, untimed: the connection and the topic's metadata, as every run does before its clock.
            try await producer.send(KafkaProducerRecord(topic: topic, value: value, partition: 0))
            let clock = ContinuousClock()
            let start = clock.now
            for index in 0..<count {
                try await producer.enqueue(KafkaProducerRecord(topic: topic, value: value, partition: index % partitions))
            }
            try await producer.flush(timeout: .seconds(300))
            return clock.now - start
        }
        let stored = RawLibrdkafka.highWatermarks(bootstrap: bootstrap, topic: topic, partitions: partitions) - before
        precondition(stored == Int64(count) + 1, "\(topic): the broker took \(stored) of \(count + 1) records")
        return elapsed
    }

    /// `enqueue` with tracing off, `count` records to a broker that is never reached (127.0.0.1:1): the client's
    /// own cost per record, nothing sent, to set beside ``RawLibrdkafka/offlineProduce(count:value:)``.
    static func offlineEnqueue(count: Int, value: [UInt8]) async throws -> Duration {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(
            bootstrapServers: ["127.0.0.1:1"], linger: .milliseconds(5), shutdownTimeout: .zero, tracing: .disabled, metrics: .disabled
        ))
        return try await withRunning(producer) { producer in
            let clock = ContinuousClock()
            let start = clock.now
            for index in 0..<count {
                try await producer.enqueue(KafkaProducerRecord(topic: "offline", value: value, partition: index % 16))
            }
            return clock.now - start
        }
    }

    /// Handles `count` messages with `consumer.run { }`, each inside a process span traced as `tracing` says.
    /// - Returns: When the messages reached the handler.
    static func consume(bootstrap: String, topic: String, group: String, count: Int, tracing: Tracing) async throws -> ConsumeTiming {
        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
            bootstrapServers: [bootstrap], groupID: group, topics: [topic], autoOffsetReset: .earliest, commitMode: .afterHandled,
            tracing: tracing.configuration, metrics: .disabled,
            properties: ["session.timeout.ms": "6000"]
        ))
        let clock = ContinuousClock()
        let state = Counter()
        try await consumer.run { _ in
            if state.increment(at: clock.now) == count { consumer.triggerGracefulShutdown() }
        }
        return state.timing
    }

    /// `samples` sequential awaited sends (produce → ack), traced and sampled.
    static func ackLatencies(bootstrap: String, topic: String, samples: Int, value: [UInt8]) async throws -> [Duration] {
        let producer = try producer(bootstrap, tracing: .sampled, linger: .zero)
        return try await withRunning(producer) { producer in
            let clock = ContinuousClock()
            var result: [Duration] = []
            for index in 0..<(samples + 100) {
                let start = clock.now
                try await producer.send(KafkaProducerRecord(topic: topic, value: value))
                if index >= 100 { result.append(clock.now - start) }
            }
            return result
        }
    }

    /// `samples` sends, one at a time, each timed from just before `send` to the consumer's handler (traced).
    static func handlerLatencies(bootstrap: String, topic: String, group: String, samples: Int) async throws -> [Duration] {
        let producer = try producer(bootstrap, tracing: .sampled, linger: .zero)
        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
            bootstrapServers: [bootstrap], groupID: group, topics: [topic], autoOffsetReset: .latest,
            tracing: Tracing.sampled.configuration, metrics: .disabled,
            properties: ["session.timeout.ms": "6000", "fetch.wait.max.ms": "5"]
        ))
        let clock = ContinuousClock()
        let sentAt = Stamps<ContinuousClock.Instant>()
        let latencies = Stamps<Duration>()
        let probes = Stamps<Bool>()
        return try await withRunning(producer) { producer in
            try await withDeadline("produce → handler latencies", .seconds(180)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await consumer.run { message in
                            guard let text = message.valueString else { return }
                            if text == "probe" { return probes.set(0, true) }
                            guard let index = Int(text), let sent = sentAt.get(index) else { return }
                            latencies.set(index, clock.now - sent)
                            if latencies.count == samples + 100 { consumer.triggerGracefulShutdown() }
                        }
                    }
                    // Records sent before the group assigns the partition would be skipped (offset reset latest): probe
                    // until one reaches the handler.
                    try await withDeadline("the consumer's assignment", .seconds(60)) {
                        while probes.count == 0 {
                            try await producer.send(KafkaProducerRecord(topic: topic, value: "probe"))
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                    for index in 0..<(samples + 100) {
                        sentAt.set(index, clock.now)
                        try await producer.send(KafkaProducerRecord(topic: topic, value: "\(index)"))
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    try await group.waitForAll()
                }
            }
            return (100..<(samples + 100)).compactMap { latencies.get($0) }
        }
    }
}

/// Counts handled messages and remembers when the first and the last arrived.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var recorded = ConsumeTiming()

    func increment(at now: ContinuousClock.Instant) -> Int {
        lock.withLock {
            count += 1
            recorded.record(now)
            return count
        }
    }

    var timing: ConsumeTiming { lock.withLock { recorded } }
}

/// Values by index, shared between the sending task and the handler.
final class Stamps<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: Value] = [:]

    func set(_ index: Int, _ value: Value) { lock.withLock { values[index] = value } }
    func get(_ index: Int) -> Value? { lock.withLock { values[index] } }
    var count: Int { lock.withLock { values.count } }
}
