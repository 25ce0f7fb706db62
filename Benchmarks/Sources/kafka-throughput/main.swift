// TracedKafka against raw librdkafka, on one out-of-process broker, in one run.
//
//   Benchmarks/run                                   # starts local-kafka, runs this and the Python peer, prints the table
//   .build/release/kafka-throughput --bootstrap HOST:PORT [--partitions 16] [--count 200000] [--samples 2000]
//       [--python-rate MSGS_PER_S] [--only RUN]
//
// Produce: (a) a raw librdkafka loop (rd_kafka_produce + rd_kafka_poll, no headers), (a′) the same loop with its
// delivery reports served on a second thread, as TracedKafka serves them, (b) TracedKafka with tracing
// off, (c) with a non-sampled span per send (headers written, nothing recorded), (d) with every send sampled and
// recorded by the W3C recording tracer; each `enqueue`s N records of 100 bytes round-robin over the partitions, then
// flushes (linger 5 ms on all).
// Consume: a raw rd_kafka_consumer_poll loop against `consumer.run { }` with tracing off, then with a sampled process
// span per message, each reading (a)'s N records in a new group. Latency: sequential produce → ack, raw and traced; produce → handler.
import Foundation

func argument(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

guard let bootstrap = argument("bootstrap") else {
    FileHandle.standardError.write(Data("usage: kafka-throughput --bootstrap HOST:PORT [--partitions P] [--count N] [--samples N] [--python-rate R] [--only RUN]\n".utf8))
    exit(2)
}
let count = argument("count").flatMap(Int.init) ?? 200_000
let partitions = argument("partitions").flatMap(Int.init) ?? 16
let samples = argument("samples").flatMap(Int.init) ?? 2_000
let pythonRate = argument("python-rate").flatMap(Double.init)
let value = [UInt8](repeating: 0x61, count: 100)

@Sendable func rate(_ duration: Duration) -> Double {
    Double(count) / (Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
}

@Sendable func milliseconds(_ duration: Duration) -> Double {
    (Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18) * 1000
}

@Sendable func percentile(_ values: [Duration], _ p: Double) -> Double {
    let sorted = values.sorted()
    return milliseconds(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
}

/// Everything, off the main actor (hopping to it per await would be measured instead of the library).
@Sendable func measure() async throws {
    // The broker is fresh for each run: Benchmarks/run creates these topics with `partitions` partitions, and every
    // run sends round-robin over them. librdkafka's mock broker keeps only the last ~5 MB of each partition, so 200k
    // records must spread evenly (its sticky partitioner puts ~10 ms of keyless records on one partition at a time).
    let topic = { (name: String) in "bench-\(name)" }
    if let only = argument("only") {
        // One run alone, for a profiler: produce with raw|raw-poll-thread|off|unsampled|sampled, or consume with
        // consume-raw|consume-off|consume-sampled (which first produces the records it reads, untimed), or
        // offline (the client's own cost per record, nothing sent).
        let elapsed: Duration
        let group = "\(only)-\(getpid())"
        switch only {
        case "raw", "raw-poll-thread":
            elapsed = RawLibrdkafka.produce(bootstrap: bootstrap, topic: topic("raw"), partitions: partitions, count: count, value: value,
                                            reports: only == "raw" ? .inLoop : .onPollThread)
        case "offline":
            // The client's own cost per record, no broker involved (runs in any order; --bootstrap is not used).
            let records = min(count, 90_000)
            let nanoseconds = { (duration: Duration) in milliseconds(duration) * 1e6 / Double(records) }
            _ = RawLibrdkafka.offlineProduce(count: records, value: value)  // untimed: the process's heap grows here once
            let raw = RawLibrdkafka.offlineProduce(count: records, value: value)
            let traced = try await TracedRuns.offlineEnqueue(count: records, value: value)
            print(String(format: "offline, %d records: rd_kafka_producev %.0f ns, rd_kafka_produce + poll(0) %.0f ns, TracedKafka enqueue (tracing off) %.0f ns per record",
                         records, nanoseconds(raw.producev), nanoseconds(raw.producePoll), nanoseconds(traced)))
            return
        case "consume-raw":
            _ = RawLibrdkafka.produce(bootstrap: bootstrap, topic: topic("raw"), partitions: partitions, count: count, value: value)
            let timing = RawLibrdkafka.consume(bootstrap: bootstrap, topic: topic("raw"), group: group, count: count)
            elapsed = timing.elapsed
            print(String(format: "longest pause %.0f ms; without it %.0f msg/s", milliseconds(timing.longestPause), rate(timing.steadyElapsed)))
        case "consume-off", "consume-sampled":
            _ = RawLibrdkafka.produce(bootstrap: bootstrap, topic: topic("raw"), partitions: partitions, count: count, value: value)
            let timing = try await TracedRuns.consume(bootstrap: bootstrap, topic: topic("raw"), group: group, count: count,
                                                      tracing: only == "consume-off" ? .off : .sampled)
            elapsed = timing.elapsed
            print(String(format: "longest pause %.0f ms; without it %.0f msg/s", milliseconds(timing.longestPause), rate(timing.steadyElapsed)))
        default:
            guard let tracing = TracedRuns.Tracing(rawValue: only) else {
                FileHandle.standardError.write(Data("--only takes raw, raw-poll-thread, off, unsampled, sampled, consume-raw, consume-off, consume-sampled or offline\n".utf8))
                exit(2)
            }
            elapsed = try await TracedRuns.produce(bootstrap: bootstrap, topic: topic(only), partitions: partitions, count: count, value: value, tracing: tracing)
        }
        print(String(format: "%@: %.0f msg/s", only, rate(elapsed)))
        return
    }
    print("warming up the broker's topics…")
    for name in ["raw", "raw-poll-thread", "off", "unsampled", "sampled", "ack-raw", "ack", "handler"] {
        _ = RawLibrdkafka.ackLatencies(bootstrap: bootstrap, topic: topic(name), samples: 1, value: value)
    }
    var rows: [(String, Double)] = []
    let raw = RawLibrdkafka.produce(bootstrap: bootstrap, topic: topic("raw"), partitions: partitions, count: count, value: value)
    rows.append(("(a) raw librdkafka produce loop", rate(raw)))
    let rawPollThread = RawLibrdkafka.produce(bootstrap: bootstrap, topic: topic("raw-poll-thread"), partitions: partitions, count: count, value: value, reports: .onPollThread)
    rows.append(("(a′) raw loop, delivery reports served on a second thread", rate(rawPollThread)))
    for tracing in [TracedRuns.Tracing.off, .unsampled, .sampled] {
        let elapsed = try await TracedRuns.produce(bootstrap: bootstrap, topic: topic(tracing.rawValue), partitions: partitions, count: count, value: value, tracing: tracing)
        let label = ["off": "(b) TracedKafka, tracing off", "unsampled": "(c) TracedKafka, unsampled spans",
                     "sampled": "(d) TracedKafka, every send sampled + recorded"][tracing.rawValue]!
        rows.append((label, rate(elapsed)))
    }
    if let pythonRate { rows.append(("Python confluent-kafka + OpenTelemetry instrumentation", pythonRate)) }

    let rawConsume = RawLibrdkafka.consume(bootstrap: bootstrap, topic: topic("raw"), group: "raw", count: count)
    let untracedConsume = try await TracedRuns.consume(bootstrap: bootstrap, topic: topic("raw"), group: "off", count: count, tracing: .off)
    let tracedConsume = try await TracedRuns.consume(bootstrap: bootstrap, topic: topic("raw"), group: "traced", count: count, tracing: .sampled)

    let rawAck = RawLibrdkafka.ackLatencies(bootstrap: bootstrap, topic: topic("ack-raw"), samples: samples, value: value)
    let tracedAck = try await TracedRuns.ackLatencies(bootstrap: bootstrap, topic: topic("ack"), samples: samples, value: value)
    let handler = try await TracedRuns.handlerLatencies(bootstrap: bootstrap, topic: topic("handler"), group: "latency", samples: samples)

    let base = rows[0].1
    print("\nproduce, \(count) records of 100 bytes each")
    print("| run | msg/s | × (a) |\n|---|---|---|")
    for (label, value) in rows { print(String(format: "| %@ | %.0f | %.2f |", label, value, value / base)) }
    print("\nconsume, \(count) records")
    print("| run | msg/s | longest pause (ms) | msg/s without it | × raw, without it |\n|---|---|---|---|---|")
    let consumeRows = [("raw rd_kafka_consumer_poll loop", rawConsume), ("TracedKafka run { }, tracing off", untracedConsume),
                       ("TracedKafka run { } with a sampled process span per message", tracedConsume)]
    for (label, timing) in consumeRows {
        print(String(format: "| %@ | %.0f | %.0f | %.0f | %.2f |", label, rate(timing.elapsed), milliseconds(timing.longestPause),
                     rate(timing.steadyElapsed), rate(timing.steadyElapsed) / rate(rawConsume.steadyElapsed)))
    }
    print("\nlatency, \(samples) sequential samples (ms)")
    print("| path | p50 | p99 |\n|---|---|---|")
    print(String(format: "| produce → ack, raw librdkafka | %.3f | %.3f |", percentile(rawAck, 0.5), percentile(rawAck, 0.99)))
    print(String(format: "| produce → ack, TracedKafka send (sampled) | %.3f | %.3f |", percentile(tracedAck, 0.5), percentile(tracedAck, 0.99)))
    print(String(format: "| produce → handler, TracedKafka (sampled) | %.3f | %.3f |", percentile(handler, 0.5), percentile(handler, 0.99)))
}

try await Task.detached { try await measure() }.value
