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

/// Traceparent values that are valid or nearly so, for the seeded test of the extractor: valid ones of random ids,
/// versions and flags, some mutated byte by byte (a byte replaced, inserted or dropped, an id zeroed, the version
/// made ff, a suffix added, the value cut short).
enum MutatedTraceparents {
    /// W3C Trace Context's `traceparent` grammar, written from the specification rather than from the library's byte
    /// checks, with the library's documented limits (UTF-8, no control characters, at most
    /// ``KafkaHeadersExtractor/maxValueLength`` bytes): `version-traceid-parentid-flags` in lowercase hex, version
    /// `ff` and all-zero ids invalid, version `00` exactly four fields, a later version more after a dash.
    static func isValidTraceparent(_ bytes: [UInt8]) -> Bool {
        guard bytes.count <= KafkaHeadersExtractor.maxValueLength, !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }),
            let text = String(validating: bytes, as: UTF8.self)
        else { return false }
        let fields = text.split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count >= 4 else { return false }
        func isLowercaseHex(_ field: Substring, count: Int) -> Bool {
            field.utf8.count == count && field.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
        }
        guard isLowercaseHex(fields[0], count: 2), fields[0] != "ff",
            isLowercaseHex(fields[1], count: 32), fields[1] != Substring(repeating: "0", count: 32),
            isLowercaseHex(fields[2], count: 16), fields[2] != Substring(repeating: "0", count: 16),
            isLowercaseHex(fields[3], count: 2)
        else { return false }
        return fields[0] == "00" ? fields.count == 4 : true
    }

    static func hex(_ count: Int, using generator: inout SplitMix64) -> String {
        String((0..<count).map { _ in "0123456789abcdef".randomElement(using: &generator)! })
    }

    /// A valid traceparent: mostly version 00, a quarter a later version (some with a further field).
    static func valid(using generator: inout SplitMix64) -> String {
        var version = "00"
        if Int.random(in: 0..<4, using: &generator) == 0 {
            repeat { version = hex(2, using: &generator) } while version == "ff" || version == "00"
        }
        var text = "\(version)-\(hex(32, using: &generator))-\(hex(16, using: &generator))-\(hex(2, using: &generator))"
        if version != "00", Bool.random(using: &generator) { text += "-" + hex(Int.random(in: 0...6, using: &generator), using: &generator) }
        return text
    }

    /// Bytes a mutation writes: the hex digits and dash of the grammar, their look-alikes, control and non-ASCII bytes.
    static let replacements: [UInt8] = Array("0179aefgAF-_z ".utf8) + [0x00, 0x09, 0x0A, 0x7F, 0x80, 0xC3, 0xFF]

    /// A valid traceparent, unchanged (a third) or mutated one to three times.
    static func candidate(using generator: inout SplitMix64) -> [UInt8] {
        var bytes = Array(valid(using: &generator).utf8)
        let mutations = Int.random(in: 0..<3, using: &generator) == 0 ? 0 : Int.random(in: 1...3, using: &generator)
        for _ in 0..<mutations {
            let position = Int.random(in: 0..<max(1, bytes.count), using: &generator)
            let byte = Bool.random(using: &generator)
                ? replacements.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
            switch Int.random(in: 0..<8, using: &generator) {
            case 0, 1: if !bytes.isEmpty { bytes[position] = byte }
            case 2: bytes.insert(byte, at: min(position, bytes.count))
            case 3: if !bytes.isEmpty { bytes.remove(at: position) }
            case 4: if bytes.count >= 35 { bytes.replaceSubrange(3..<35, with: repeatElement(0x30, count: 32)) }
            case 5: if bytes.count >= 52 { bytes.replaceSubrange(36..<52, with: repeatElement(0x30, count: 16)) }
            case 6: if bytes.count >= 2 { bytes.replaceSubrange(0..<2, with: Array("ff".utf8)) }
            default:
                if Bool.random(using: &generator) {
                    let suffix = (Bool.random(using: &generator) ? "-" : "") + hex(Int.random(in: 1...4, using: &generator), using: &generator)
                    bytes += Array(suffix.utf8)
                } else {
                    bytes.removeLast(min(bytes.count, Int.random(in: 1...4, using: &generator)))
                }
            }
        }
        return bytes
    }

    /// A header beside the traceparent read: an earlier traceparent (valid or mutated), a tracestate, baggage, or
    /// an unrelated header, some with no value.
    static func otherHeader(using generator: inout SplitMix64) -> KafkaHeader {
        switch Int.random(in: 0..<4, using: &generator) {
        case 0: return KafkaHeader(key: "traceparent", value: candidate(using: &generator))
        case 1: return KafkaHeader(key: "tracestate", value: "vendor=\(hex(8, using: &generator))")
        case 2: return KafkaHeader(key: "baggage", value: "user=\(hex(4, using: &generator))")
        default: return KafkaHeader(key: "other", value: Bool.random(using: &generator) ? candidate(using: &generator) : nil)
        }
    }
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

    @Test("10,000 seeded traceparents, valid ones and ones mutated byte by byte, among other headers: exactly the valid last value propagates, as it was written")
    func mutatedTraceparents() {
        var generator = SplitMix64(seed: 0x5EED_CAFE)
        let tracer = W3CRecordingTracer()
        var valid = 0, validLaterVersion = 0, invalid = 0, propagated = 0
        for _ in 0..<10_000 {
            // Other headers around the traceparent read; an earlier traceparent, valid or not, must not count.
            var headers = KafkaHeaders()
            for _ in 0..<Int.random(in: 0...2, using: &generator) {
                headers.append(MutatedTraceparents.otherHeader(using: &generator))
            }
            let last: [UInt8]? = Int.random(in: 0..<20, using: &generator) == 0 ? nil : MutatedTraceparents.candidate(using: &generator)
            headers.append(KafkaHeader(key: "traceparent", value: last))
            for _ in 0..<Int.random(in: 0...1, using: &generator) {
                var after = MutatedTraceparents.otherHeader(using: &generator)
                if after.key == "traceparent" { after.key = "tracestate" }
                headers.append(after)
            }

            let isValid = last.map(MutatedTraceparents.isValidTraceparent) ?? false
            let text = last.flatMap { String(validating: $0, as: UTF8.self) }
            let description = text.map { String(reflecting: $0) } ?? "\(last.map { $0.description } ?? "nil")"
            // The library's part: the extractor hands the tracer the last traceparent exactly when it is valid.
            let extracted = KafkaHeadersExtractor().extract(key: "traceparent", from: headers)
            #expect(extracted == (isValid ? text : nil), "\(description)")
            // Through a W3C tracer (which knows version 00 only): a valid one is the parent, as written; no other is.
            var context = InstrumentationContext.topLevel
            tracer.extract(headers, into: &context, using: KafkaHeadersExtractor())
            let parent = context.w3cTraceContext?.traceParentHeaderValue
            if isValid, text?.hasPrefix("00-") == true {
                #expect(parent == text, "\(description)")
            } else {
                #expect(parent == nil, "\(description)")
            }
            if parent != nil { propagated += 1 }
            if isValid { valid += 1 } else { invalid += 1 }
            if isValid, text?.hasPrefix("00-") == false { validLaterVersion += 1 }
        }
        // Both halves were exercised: the seed gives thousands of each, and later versions among the valid ones.
        #expect(valid >= 2_000 && invalid >= 2_000, "valid: \(valid), invalid: \(invalid)")
        #expect(validLaterVersion >= 200, "valid later versions: \(validLaterVersion)")
        #expect(propagated == valid - validLaterVersion)
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
