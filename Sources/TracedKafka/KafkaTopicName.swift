import Synchronization

/// Kafka's rules for topic names, checked by both backends so they refuse the same names.
///
/// Kafka accepts letters, digits, `.`, `_` and `-`, at most 249 of them, and neither `.` nor `..`. librdkafka's
/// mock broker accepts more (`bad topic!`), a real broker does not; the file queue needs the rule so that a topic
/// never names a path outside its directory.
enum KafkaTopicName {
    /// The longest topic name Kafka accepts.
    static let maxLength = 249

    /// Throws `code` unless `topic` is a valid Kafka topic name.
    static func validate(_ topic: String, code: KafkaError.Code) throws {
        guard !isValid(topic) else { return }
        throw KafkaError(
            code: code,
            reason: "Topic name \(String(reflecting: topic)) is not valid: Kafka topic names use only letters, "
                + "digits, '.', '_' and '-', at most \(maxLength) of them, and are not '.' or '..'"
        )
    }

    static func isValid(_ topic: String) -> Bool {
        var topic = topic  // withUTF8 reads a native string's bytes in place (this runs once per record)
        return topic.withUTF8 { bytes in
            guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
            for byte in bytes where !isLegal(byte) { return false }
            return !(bytes.count <= 2 && bytes.allSatisfy { $0 == 0x2E })  // neither "." nor ".."
        }
    }

    /// An ASCII letter or digit, `.`, `_` or `-`.
    static func isLegal(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x5F || byte == 0x2D || byte == 0x2E
    }
}

/// The last topic name a producer found valid, recognised without a lock: a producer mostly sends to one topic in a
/// row, and recognising the same string is cheaper than checking its characters again.
///
/// A `String` is two words. Equal words are the same small string's bytes, or the same storage (whose count is in
/// the words too); the cache keeps the string it names, so its storage can't be freed and reused for another string
/// while a reader compares with it. The words are published under a sequence count (a seqlock): a reader that sees
/// the count change, or odd, while it reads them takes the slow path, so it never mixes two names' words.
final class LastValidTopicName: Sendable {
    private let sequence = Atomic<UInt>(0)
    private let first = Atomic<UInt>(0)
    private let second = Atomic<UInt>(0)
    /// The string the words belong to, kept alive; also what serialises writers.
    private let kept = Mutex("")

    /// Whether `topic` is the very string remembered last.
    func isLast(_ topic: String) -> Bool {
        let words = Self.words(of: topic)
        let before = sequence.load(ordering: .acquiring)
        let first = first.load(ordering: .relaxed), second = second.load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        return before & 1 == 0 && sequence.load(ordering: .relaxed) == before && first == words.0 && second == words.1
    }

    /// Remembers `topic`, which was found valid.
    func remember(_ topic: String) {
        let words = Self.words(of: topic)
        kept.withLock { kept in
            let count = sequence.load(ordering: .relaxed)
            sequence.store(count &+ 1, ordering: .relaxed)
            atomicMemoryFence(ordering: .releasing)
            first.store(words.0, ordering: .relaxed)
            second.store(words.1, ordering: .relaxed)
            sequence.store(count &+ 2, ordering: .releasing)
            // The old string goes only now, once no reader can match its words.
            kept = topic
        }
    }

    private static func words(of topic: String) -> (UInt, UInt) { unsafeBitCast(topic, to: (UInt, UInt).self) }
}
