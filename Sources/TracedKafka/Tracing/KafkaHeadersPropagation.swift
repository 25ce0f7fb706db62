import Tracing

/// Writes trace context into record headers for `Tracer.inject`.
///
/// Each write **replaces** every header with the same key, so retries, re-sends and forwarding never leave two
/// `traceparent` headers on a record.
public struct KafkaHeadersInjector: Injector {
    /// Creates an injector.
    public init() {}

    /// Replaces the headers named `key` with one header holding `value`.
    /// - Parameters:
    ///   - value: The header value, written as UTF-8.
    ///   - key: The header key.
    ///   - carrier: The headers to change.
    public func inject(_ value: String, forKey key: String, into carrier: inout KafkaHeaders) {
        if !carrier.isEmpty { carrier.removeAll { $0.hasKey(key) } }
        carrier.append(KafkaHeader(key: key, value: value))
    }
}

/// Reads trace context from record headers for `Tracer.extract`, refusing hostile input.
///
/// It reads the **last** value of a key, as Java's instrumentation does: a peer that forwards a record by appending
/// its own `traceparent` (the Python OpenTelemetry instrumentations do) puts its context last, so the consumer
/// continues the forwarder's trace; earlier values of the key are ignored. It returns nothing (so nothing propagates
/// and the consumer starts a new root) when that last value is not UTF-8, holds control characters or is oversized.
/// `traceparent` must follow the W3C grammar; `tracestate` and `baggage` are cut to the W3C limits instead of being
/// forwarded whole.
public struct KafkaHeadersExtractor: Extractor {
    /// The longest header value read for any key other than `tracestate` and `baggage`.
    public static let maxValueLength = 512
    /// W3C Trace Context: at most 32 tracestate list members, and 512 characters are enough to propagate.
    public static let maxTraceStateMembers = 32
    /// The longest tracestate forwarded.
    public static let maxTraceStateLength = 512
    /// W3C Baggage: at most 64 list members and 8192 bytes.
    public static let maxBaggageMembers = 64
    /// The longest baggage forwarded.
    public static let maxBaggageLength = 8192

    /// Creates an extractor.
    public init() {}

    /// The sanitized value of `key` in `carrier`, or `nil`.
    /// - Parameters:
    ///   - key: The header key the tracer asks for.
    ///   - carrier: The record's headers.
    public func extract(key: String, from carrier: KafkaHeaders) -> String? {
        carrier.withLastValueBytes(forKey: key) { Self.sanitized($0, key: key) }
    }

    /// The value of `key` if it passes the checks for that key, as text.
    static func sanitized(_ bytes: UnsafeRawBufferPointer, key: String) -> String? {
        if key == "traceparent" {
            guard isValidTraceParent(bytes) else { return nil }
            // Version 00's 55 bytes are all hex digits and dashes, checked; a later version's further fields are
            // not, so they are checked for control characters below.
            if bytes.count == 55 { return String(decoding: bytes, as: UTF8.self) }
        }
        // Checked on the bytes, so the one allocation is the String handed back. In UTF-8, bytes below 0x80 are
        // ASCII, so a control character is exactly a byte below 0x20 or 0x7F. The W3C lists (tracestate, baggage)
        // allow tabs as optional whitespace around their separators; the members are trimmed of them below.
        let allowsTabs = key == "tracestate" || key == "baggage"
        guard !bytes.contains(where: { ($0 < 0x20 && !(allowsTabs && $0 == 0x09)) || $0 == 0x7F })
        else { return nil }
        switch key {
        case "traceparent":
            return String(utf8Bytes: bytes)
        case "tracestate":
            return String(utf8Bytes: bytes).flatMap {
                Self.cut($0, maxMembers: Self.maxTraceStateMembers, maxLength: Self.maxTraceStateLength)
            }
        case "baggage":
            return String(utf8Bytes: bytes).flatMap {
                Self.cut($0, maxMembers: Self.maxBaggageMembers, maxLength: Self.maxBaggageLength)
            }
        default:
            return bytes.count <= Self.maxValueLength ? String(utf8Bytes: bytes) : nil
        }
    }

    /// The same checks, reading a consumed message's headers in place (no copy of its headers).
    struct MessageExtractor: Extractor {
        func extract(key: String, from carrier: KafkaConsumerMessage) -> String? {
            carrier.withLastHeaderValue(forKey: key) { KafkaHeadersExtractor.sanitized($0, key: key) }
        }
    }

    /// W3C `traceparent`: `version-traceid-parentid-flags` in lowercase hex; version `ff` and all-zero ids are
    /// invalid; version `00` has exactly four fields, later versions may append fields after a `-`.
    static func isValidTraceParent(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 55, bytes.count <= maxValueLength else { return false }
        guard bytes[2] == 0x2D, bytes[35] == 0x2D, bytes[52] == 0x2D else { return false }
        // Each field is lowercase hex (accumulated without a branch per byte); the ids must not be all zeros.
        func field(_ range: Range<Int>) -> (isHex: Bool, isZero: Bool) {
            var isHex = true
            var bits: UInt8 = 0
            for index in range {
                let byte = bytes[index]
                isHex = isHex && (byte &- 0x30 < 10 || byte &- 0x61 < 6)
                bits |= byte ^ 0x30
            }
            return (isHex, bits == 0)
        }
        let version = field(0..<2), traceID = field(3..<35), parentID = field(36..<52), flags = field(53..<55)
        guard version.isHex, traceID.isHex, parentID.isHex, flags.isHex, !traceID.isZero, !parentID.isZero else { return false }
        if bytes[0] == 0x66, bytes[1] == 0x66 { return false }  // version ff
        if version.isZero, bytes.count != 55 { return false }  // version 00 has exactly four fields
        if bytes.count > 55, bytes[55] != 0x2D { return false }
        return true
    }

    /// Keeps whole list members from the front while both limits hold; `nil` when none fits.
    static func cut(_ value: String, maxMembers: Int, maxLength: Int) -> String? {
        var kept: [Substring] = []
        var length = 0
        for member in value.split(separator: ",", omittingEmptySubsequences: true) {
            let trimmed = member.trimmingSpaces
            guard !trimmed.isEmpty else { continue }
            let added = trimmed.utf8.count + (kept.isEmpty ? 0 : 1)
            guard kept.count < maxMembers, length + added <= maxLength else { break }
            kept.append(trimmed)
            length += added
        }
        return kept.isEmpty ? nil : kept.joined(separator: ",")
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result.removeFirst() }
        while result.last == " " || result.last == "\t" { result.removeLast() }
        return result
    }
}

/// Writes a tracer's context into a send's ``TrailingHeaders``; each write replaces one of the same key.
struct TrailingHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout TrailingHeaders) {
        carrier.set(value, forKey: key)
    }
}
