// Microbenchmarks of the per-message work TracedKafka adds to a send and to a handled message, with no broker:
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
//
// Every figure is per message (the harness runs 1,000 messages per sample and divides). Names have no spaces or
// slashes: ordo-one/benchmark 1.38.1 writes threshold files under a cleaned-up name but reads them under the raw one. The W3C recording tracer of
// TracedKafkaTesting stands in for a real tracer: it parses and prints W3C headers with swift-w3c-trace-context, as
// swift-otel does, and keeps what it records in memory (reset between samples, outside the timing).
import Benchmark
import Foundation
import NIOCore
@_spi(Benchmarks) import TracedKafka
import TracedKafkaNIO
import TracedKafkaTesting
import Tracing

let benchmarks: @Sendable () -> Void = {
    if ProcessInfo.processInfo.environment["TRACEDKAFKA_ALLOCATIONS_ONLY"] != nil {
        // Benchmarks/allocations (and CI): allocations only, which repeat exactly, checked against the thresholds
        // in Thresholds/ with no tolerance — one more allocation per message fails. Times are never checked.
        Benchmark.defaultConfiguration = .init(
            metrics: [.mallocCountTotal],
            scalingFactor: .kilo,
            maxDuration: .seconds(1),
            maxIterations: 50,
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
        )
    } else {
        Benchmark.defaultConfiguration = .init(
            metrics: [.wallClock, .mallocCountTotal, .throughput],
            scalingFactor: .kilo,
            maxDuration: .seconds(2),
            maxIterations: 1_000_000
        )
    }

    let value = [UInt8](repeating: 0x61, count: 100)
    let sampledParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    // Headers: the tracer's inject into an empty record's headers, then its extract from them, as one message crosses
    // the hop. The library's share is KafkaHeadersInjector and KafkaHeadersExtractor; the tracer prints and parses.
    Benchmark("headers-inject-extract-W3C-tracer") { benchmark in
        let tracer = W3CRecordingTracer()
        let span = tracer.startSpan("send orders", context: .topLevel, ofKind: .producer)
        let context = span.context
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var headers = KafkaHeaders()
            tracer.inject(context, into: &headers, using: KafkaHeadersInjector())
            var extracted = InstrumentationContext.topLevel
            tracer.extract(headers, into: &extracted, using: KafkaHeadersExtractor())
            blackHole(extracted)
        }
    }

    // The library's own share of the above: one header written, one header validated and read back.
    Benchmark("headers-injector-extractor-alone") { benchmark in
        for _ in benchmark.scaledIterations {
            var headers = KafkaHeaders()
            KafkaHeadersInjector().inject(sampledParent, forKey: "traceparent", into: &headers)
            blackHole(KafkaHeadersExtractor().extract(key: "traceparent", from: headers))
        }
    }

    // Building the record a user sends: topic, key, 100-byte value, two headers of their own.
    Benchmark("record-with-2-headers") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(
                KafkaProducerRecord(
                    topic: "orders",
                    key: Array("order-\(index)".utf8),
                    value: value,
                    headers: [KafkaHeader(key: "content-type", value: "application/json"), KafkaHeader(key: "tenant", value: "eu-1")]
                )
            )
        }
    }

    // The same record with its value in a SwiftNIO ByteBuffer (TracedKafkaNIO), built once as the array above is: the
    // record keeps the buffer and lends its readable bytes in place. Compare with record-with-2-headers.
    let valueBuffer = ByteBuffer(bytes: value)
    Benchmark("record-with-2-headers-ByteBuffer-value") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(
                KafkaProducerRecord(
                    topic: "orders",
                    key: Array("order-\(index)".utf8),
                    value: valueBuffer,
                    headers: [KafkaHeader(key: "content-type", value: "application/json"), KafkaHeader(key: "tenant", value: "eu-1")]
                )
            )
        }
    }

    // Send: what KafkaProducer.send adds per record: start the PRODUCER span with its attributes, inject the
    // context into the headers, end the span at the delivery report. With swift-distributed-tracing's NoOpTracer,
    // whose spans cost nothing and inject nothing, what is left is the library's fixed share of a traced send (not
    // the injector's header work, nor the attributes of a sampled span).
    let tracers: [(String, @Sendable () -> any Tracer)] = [
        ("sampled", { W3CRecordingTracer(sampler: .always) }),
        ("unsampled", { W3CRecordingTracer(sampler: .never) }),
        ("NoOpTracer", { NoOpTracer() }),  // nothing injected or recorded
    ]
    for (label, makeTracer) in tracers {
        Benchmark("send-span-\(label)") { benchmark in
            let tracing = KafkaProducerTracing(configuration: KafkaTracingConfiguration(tracer: makeTracer()), clientID: "checkout")
            let report = KafkaDeliveryReport(
                messageID: KafkaProducerMessageID(rawValue: 1), topic: "orders", partition: 3, offset: 42, timestamp: nil
            )
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let record = KafkaProducerRecord(topic: "orders", value: value)
                var traceHeaders = TrailingHeaders()
                var keptHeaders: KafkaHeaders?
                if let span = tracing.startSend(record, traceHeaders: &traceHeaders, keptHeaders: &keptHeaders) {
                    KafkaProducerTracing.end(span, with: .success(report))
                }
                blackHole(record)
                blackHole(traceHeaders)
                blackHole(keptHeaders)
            }
            benchmark.stopMeasurement()  // freeing the tracer and what it recorded is not the send's cost
            blackHole(tracing)
        }
    }

    // Process: what the handler API adds per message: extract the producer's context from the headers, start the
    // CONSUMER span (child of the producer's span, linked to it) with its attributes, run the handler in it, end it.
    Benchmark("process-span-sampled") { benchmark in
        let tracing = KafkaConsumerTracing(
            configuration: KafkaTracingConfiguration(tracer: W3CRecordingTracer()),
            groupID: "billing",
            clientID: "billing-1"
        )
        let message = KafkaConsumerMessage(
            topic: "orders", partition: 3, offset: 42, key: nil, value: value,
            headers: [KafkaHeader(key: "traceparent", value: sampledParent)], timestamp: nil
        )
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            // As the consumer does when it takes a message: extract once, then the span.
            var taken = message
            taken.traceContext = tracing.extractContext(from: taken)
            try await tracing.withProcessSpan(taken) { blackHole($0) }
        }
        benchmark.stopMeasurement()
        blackHole(tracing)
    }
}
