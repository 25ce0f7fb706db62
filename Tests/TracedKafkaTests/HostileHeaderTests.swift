import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// Trace headers a hostile or broken producer could send; none may crash a consumer or propagate.
enum HostileHeaders {
    static let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    static let otherValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    static let embeddedTraceIDs = ["0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"]

    static func traceparent(_ bytes: [UInt8]?) -> KafkaHeaders { [KafkaHeader(key: "traceparent", value: bytes)] }
    static func traceparent(_ text: String) -> KafkaHeaders { traceparent(Array(text.utf8)) }

    static let cases: [(String, KafkaHeaders)] = [
        ("empty value", traceparent("")),
        ("nil value", traceparent(nil as [UInt8]?)),
        ("garbage", traceparent("not a traceparent")),
        ("uppercase hex", traceparent(valid.uppercased())),
        ("version ff", traceparent("ff" + valid.dropFirst(2))),
        ("all-zero trace id", traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01")),
        ("all-zero span id", traceparent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")),
        ("one character short", traceparent(String(valid.dropLast()))),
        ("version 00 with an extra field", traceparent(valid + "-00")),
        ("missing dashes", traceparent(valid.replacingOccurrences(of: "-", with: ""))),
        ("underscores for dashes", traceparent(valid.replacingOccurrences(of: "-", with: "_"))),
        ("non-hex character", traceparent("00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01")),
        ("bad flags", traceparent(String(valid.dropLast(2)) + "0z")),
        ("not UTF-8", traceparent([0xFF, 0xFE, 0xFD] + Array(valid.utf8.dropFirst(3)))),
        ("embedded NUL", traceparent(Array(valid.utf8.prefix(20)) + [0] + Array(valid.utf8.dropFirst(21)))),
        ("newline inside", traceparent(String(valid.prefix(10)) + "\n" + String(valid.dropFirst(11)))),
        ("leading and trailing spaces", traceparent(" " + valid + " ")),
        ("oversized: 10 kB", traceparent(valid + String(repeating: "-abcdef", count: 1_500))),
        ("oversized: 100 kB of zeros", traceparent([UInt8](repeating: 0x30, count: 100_000))),
        // The last value of a key is the one read: a valid one before it does not rescue an invalid last one.
        ("a valid traceparent, then an invalid one", [KafkaHeader(key: "traceparent", value: valid), KafkaHeader(key: "traceparent", value: "00-" + otherValid.dropFirst(3).uppercased())]),
        ("valid, then garbage", [KafkaHeader(key: "traceparent", value: valid), KafkaHeader(key: "traceparent", value: "junk")]),
        ("full-width digits", traceparent("００-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")),
        ("version 01 with a bad suffix", traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x")),
        ("version 01 with a further field that is not UTF-8",
         traceparent(Array("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-".utf8) + [0xFF, 0x41])),
        ("only a tracestate", [KafkaHeader(key: "tracestate", value: "vendor=value")]),
    ]
}

@Suite("Hostile trace headers never crash and never propagate")
struct HostileHeaderTests {
    @Test(
        "Each hostile case is processed under a new root span with no link",
        arguments: TestBackend.allCases, HostileHeaders.cases.indices
    )
    func hostileCaseThroughTheBroker(backend: TestBackend, _ index: Int) async throws {
        let (name, headers) = HostileHeaders.cases[index]
        let tracer = W3CRecordingTracer()
        let topic = try await backend.newTopic("hostile")
        // An untraced producer sends the headers exactly as they are.
        try await sendTraced(
            KafkaProducerRecord(topic: topic, value: "payload", headers: headers), on: backend, tracing: .disabled
        )
        let handled = try await withTracer(tracer) {
            try await handle(try tracedConsumer(backend, topics: [topic]), count: 1) { message in
                #expect(message.traceContext == nil, "\(name)")
            }
        }
        #expect(handled[0].headers == headers, "the headers arrive unchanged: \(name)")
        let process = try span(tracer, "process \(topic)")
        #expect(process.isRoot, "\(name)")
        #expect(process.links.isEmpty, "\(name)")
        #expect(!HostileHeaders.embeddedTraceIDs.contains(process.traceID), "\(name)")
    }

    @Test("The extractor itself hands the tracer no traceparent from any hostile case")
    func extractorRefusesEveryCase() {
        for (name, headers) in HostileHeaders.cases {
            #expect(KafkaHeadersExtractor().extract(key: "traceparent", from: headers) == nil, "\(name)")
        }
    }

    @Test("The table has at least 20 cases")
    func tableSize() {
        #expect(HostileHeaders.cases.count >= 20)
    }

    @Test("A valid traceparent still propagates (the guard is not a blanket refusal)")
    func validPropagates() {
        let tracer = W3CRecordingTracer()
        var context = InstrumentationContext.topLevel
        tracer.extract(HostileHeaders.traceparent(HostileHeaders.valid), into: &context, using: KafkaHeadersExtractor())
        #expect(context.w3cTraceContext?.traceParentHeaderValue == HostileHeaders.valid)
        // Repeated with the same value (a harmless duplicate) still counts.
        var repeated = InstrumentationContext.topLevel
        let twice: KafkaHeaders = [KafkaHeader(key: "traceparent", value: HostileHeaders.valid), KafkaHeader(key: "traceparent", value: HostileHeaders.valid)]
        tracer.extract(twice, into: &repeated, using: KafkaHeadersExtractor())
        #expect(repeated.w3cTraceContext != nil)
    }

    @Test("10,000 random header byte strings (seeded) never crash and never propagate")
    func randomHeaders() {
        var generator = SplitMix64(seed: 0x5EED_CAFE)
        let tracer = W3CRecordingTracer()
        let keys = ["traceparent", "tracestate", "baggage", "traceparent"]
        var propagated = 0
        for _ in 0..<10_000 {
            var headers = KafkaHeaders()
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let length = Int.random(in: 0...80, using: &generator)
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                // A third of the strings start like a real traceparent, so the parser is exercised past its prefix.
                if Bool.random(using: &generator), Bool.random(using: &generator) { bytes = Array("00-".utf8) + bytes }
                headers.append(KafkaHeader(key: keys.randomElement(using: &generator)!, value: Bool.random(using: &generator) ? bytes : nil))
            }
            var context = InstrumentationContext.topLevel
            tracer.extract(headers, into: &context, using: KafkaHeadersExtractor())
            if context.w3cTraceContext != nil { propagated += 1 }
        }
        #expect(propagated == 0)
    }

    @Test("tracestate and baggage beyond the W3C limits are cut, not forwarded whole")
    func limitsAreCut() throws {
        let extractor = KafkaHeadersExtractor()
        let members = (0..<40).map { "v\($0)=x" }.joined(separator: ",")
        let state = try #require(extractor.extract(key: "tracestate", from: [KafkaHeader(key: "tracestate", value: members)]))
        #expect(state.split(separator: ",").count == 32)
        #expect(state.hasPrefix("v0=x,v1=x"))

        let long = (0..<20).map { "vendor\($0)=" + String(repeating: "a", count: 60) }.joined(separator: ",")
        let cutState = try #require(extractor.extract(key: "tracestate", from: [KafkaHeader(key: "tracestate", value: long)]))
        #expect(cutState.utf8.count <= 512)
        #expect(cutState.split(separator: ",").allSatisfy { $0.count == "vendor0=".count + 60 || $0.count == "vendor10=".count + 60 })

        let baggage = (0..<100).map { "k\($0)=v" }.joined(separator: ",")
        let cutBaggage = try #require(extractor.extract(key: "baggage", from: [KafkaHeader(key: "baggage", value: baggage)]))
        #expect(cutBaggage.split(separator: ",").count == 64)

        let huge = "k=" + String(repeating: "v", count: 10_000)
        #expect(extractor.extract(key: "baggage", from: [KafkaHeader(key: "baggage", value: huge)]) == nil)
    }

    @Test("Injection replaces every header of the same key")
    func injectionReplaces() {
        var headers: KafkaHeaders = [
            KafkaHeader(key: "traceparent", value: "old-1"), KafkaHeader(key: "other", value: "keep"),
            KafkaHeader(key: "traceparent", value: "old-2"),
        ]
        KafkaHeadersInjector().inject("new", forKey: "traceparent", into: &headers)
        #expect(headers == [KafkaHeader(key: "other", value: "keep"), KafkaHeader(key: "traceparent", value: "new")])
    }
}

@Suite("The waterfall renderer")
struct WaterfallTests {
    @Test("A trace renders as an indented timeline with kinds, durations and bars on one time axis")
    func render() {
        func span(_ name: String, _ kind: SpanKind, id: String, parent: String?, start: UInt64, ms: Double) -> RecordedSpan {
            RecordedSpan(
                operationName: name, kind: kind, traceID: "t", spanID: id, parentSpanID: parent, links: [], attributes: [:],
                status: nil, errors: [], startNanoseconds: start, endNanoseconds: start + UInt64(ms * 1_000_000))
        }
        let spans = [
            span("process orders", .consumer, id: "c", parent: "b", start: 4_000_000, ms: 8.0),
            span("checkout", .internal, id: "a", parent: nil, start: 0, ms: 12.4),
            span("send orders", .producer, id: "b", parent: "a", start: 1_000_000, ms: 3.1),
            span("send payments", .producer, id: "d", parent: "c", start: 5_000_000, ms: 2.2),
        ]
        // 20 columns for 12.4 ms: 0.62 ms each. send orders runs from 1.0 to 4.1 ms: columns 1–6; process orders
        // from 4.0 to 12.0 ms: columns 6–19; send payments from 5.0 to 7.2 ms: columns 8–11.
        #expect(
            TraceWaterfall.render(spans, barWidth: 20) == """
                checkout                            12.4 ms  |████████████████████|
                └─ send orders          (producer)   3.1 ms  | ██████             |
                   └─ process orders    (consumer)   8.0 ms  |      ██████████████|
                      └─ send payments  (producer)   2.2 ms  |        ████        |
                                                             0              12.4 ms
                """)
        #expect(
            TraceWaterfall.render(spans, barWidth: 0) == """
                checkout                            12.4 ms
                └─ send orders          (producer)   3.1 ms
                   └─ process orders    (consumer)   8.0 ms
                      └─ send payments  (producer)   2.2 ms
                """)
    }
}
