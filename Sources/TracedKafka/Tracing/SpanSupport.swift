import Synchronization
import Tracing

// What the producer's and the consumer's spans share: partition texts, per-topic span templates, attribute helpers,
// header patterns, and the extractor that notes which keys a carried context came from.

/// `messaging.destination.partition.id` values: the text of a partition number, made once for the first 1,024.
enum PartitionID {
    private static let texts: [String] = (0..<1_024).map { String($0) }

    static func text(_ partition: Int) -> String {
        partition >= 0 && partition < texts.count ? texts[partition] : String(partition)
    }
}

/// Per topic, a span's name (`"<operation> <topic>"`) and the attributes every span of it starts with (the client's
/// own and `messaging.destination.name`), made once per topic (up to 1,000 topics; others each time). The
/// attributes have room for a record's own: a copy keeps the capacity, so adding them rehashes nothing.
final class TopicSpanTemplates: Sendable {
    struct Template: Sendable {
        let name: String
        let attributes: SpanAttributes
    }

    private let operation: String
    private let constant: SpanAttributes
    /// Up to 1,000 topics' templates.
    private let templates = Mutex(LastKeyCache<String, Template>(limit: 1_000))

    init(operation: String, attributes: SpanAttributes) {
        self.operation = operation
        self.constant = attributes
    }

    func template(for topic: String) -> Template {
        templates.withLock { cache in
            cache.value(for: topic) { topic in
                var attributes = SpanAttributes()
                attributes.reserveCapacity(12)
                attributes.merge(constant)
                attributes.set("messaging.destination.name", value: .string(topic))
                return Template(name: "\(operation) \(topic)", attributes: attributes)
            }
        }
    }
}

/// An extractor that also notes which keys the tracer found, so a re-send can drop exactly those headers.
final class KeyRecordingExtractor: Extractor, Sendable {
    private let found = Mutex<Set<String>>([])

    var keys: Set<String> { found.withLock { $0 } }

    func extract(key: String, from carrier: KafkaHeaders) -> String? {
        if carrier.contains(where: { $0.hasKey(key) }) { found.withLock { _ = $0.insert(key) } }
        return KafkaHeadersExtractor().extract(key: key, from: carrier)
    }
}

/// Attribute helpers shared by the producer's and the consumer's spans.
enum KafkaTracingAttributes {
    /// Records headers chosen by name or `*` pattern as `messaging.header.<name>` (the last value of each, when it is
    /// UTF-8), each cut to the configured length.
    static func captureHeaders(
        _ configuration: KafkaTracingConfiguration,
        from headers: KafkaHeaders,
        into attributes: inout SpanAttributes
    ) {
        guard !configuration.capturedHeaders.isEmpty, !headers.isEmpty else { return }
        let limit = max(0, configuration.maxCapturedHeaderLength)
        var room = max(0, configuration.maxCapturedHeaders)
        // Names before patterns, so a header asked for by name is never crowded out by a pattern's matches.
        let star = UInt8(ascii: "*")
        for name in configuration.capturedHeaders where room > 0 && !name.utf8.contains(star) {
            guard let value = headers.lastValue(forKey: name) else { continue }
            if record(value, as: name, limit: limit, into: &attributes) { room -= 1 }
        }
        for pattern in configuration.capturedHeaders where room > 0 && pattern.utf8.contains(star) {
            // Later headers win, as for a name: walk from the end and take each matching key once.
            var seen: Set<String> = []
            for header in headers.reversed() where room > 0 && header.keyIsUTF8 && seen.insert(header.key).inserted {
                guard HeaderPattern.matches(header.key, pattern), let value = header.value,
                    attributes["messaging.header.\(header.key)"] == nil
                else { continue }
                if record(value, as: header.key, limit: limit, into: &attributes) { room -= 1 }
            }
        }
    }

    /// Records one header's value, cut to `limit` bytes; `false` when it is not UTF-8 (nothing recorded).
    private static func record(_ value: [UInt8], as name: String, limit: Int, into attributes: inout SpanAttributes) -> Bool {
        var end = min(value.count, limit)
        // Back off to a character boundary: never cut between a UTF-8 lead byte and its continuation bytes.
        while end < value.count, end > 0, value[end] & 0xC0 == 0x80 { end -= 1 }
        guard let text = String(validating: value[..<end], as: UTF8.self) else { return false }
        attributes.set("messaging.header.\(name)", value: .string(text))
        return true
    }

    /// Marks a span failed: the error recorded, `error.type`, error status.
    static func fail(_ span: any Span, with error: any Error) {
        guard span.isRecording else { return }
        span.attributes["error.type"] = KafkaError.errorType(of: error)
        recordFailure(of: span, error)
    }

    /// The error recorded on the span and its error status (`error.type` is set by the caller).
    static func recordFailure(of span: any Span, _ error: any Error) {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error, message: KafkaError.statusDescription(of: error)))
    }

    /// Gives a span the attributes built for it in one assignment: it holds none yet (or only its sampler's, which
    /// are kept), so no dictionary is copied.
    static func hand(_ attributes: SpanAttributes, to span: any Span) {
        span.updateAttributes { current in
            if current.isEmpty { current = attributes } else { current.merge(attributes) }
        }
    }
}

/// Header-name patterns where `*` stands for any run of characters.
enum HeaderPattern {
    /// Whether `name` matches `pattern`, byte by byte (case-sensitive).
    static func matches(_ name: String, _ pattern: String) -> Bool {
        let name = Array(name.utf8), pattern = Array(pattern.utf8)
        let star = UInt8(ascii: "*")
        var n = 0, p = 0
        // Where the last `*` was, and where in the name its run would end if the rest fails to match.
        var lastStar: Int?, resume = 0
        while n < name.count {
            if p < pattern.count, pattern[p] == star {
                lastStar = p
                resume = n
                p += 1
            } else if p < pattern.count, pattern[p] == name[n] {
                p += 1
                n += 1
            } else if let star = lastStar {
                // Let the last `*` take one more byte and try again.
                p = star + 1
                resume += 1
                n = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}
