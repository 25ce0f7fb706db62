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
import BenchmarkSupport
import Foundation
import Synchronization
import TracedKafka
import TracedKafkaTesting

/// TracedKafka's handler API, the way a service uses it; tracing off, or a sampled process span per message.
func consumeTraced(bootstrap: String, topic: String, group: String, sampled: Bool, busy: Duration, meter: Meter) async throws {
    let properties = ["session.timeout.ms": "6000"].merging(propertiesArgument("properties")) { $1 }
    let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
        bootstrapServers: [bootstrap], groupID: group, topics: [topic], autoOffsetReset: .earliest,
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
        rawProduce(bootstrap: bootstrap, topic: topic, count: count, partitions: argument("partitions").flatMap(Int.init) ?? 16)
    case "consume":
        let mode = argument("mode") ?? "off"
        let group = argument("group") ?? "cost-\(mode)-\(getpid())"
        let meter = Meter(target: count)
        switch mode {
        case "raw": rawConsume(bootstrap: bootstrap, topic: topic, group: group, meter: meter)
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
