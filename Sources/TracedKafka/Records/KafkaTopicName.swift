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
        // The bytes in place: a native or small string's without a copy, any other's copied first.
        topic.utf8.withContiguousStorageIfAvailable(isValid) ?? Array(topic.utf8).withUnsafeBufferPointer(isValid)
    }

    private static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        for byte in bytes where !isLegal(byte) { return false }
        return !(bytes.count <= 2 && bytes.allSatisfy { $0 == 0x2E })  // neither "." nor ".."
    }

    /// The most partitions a topic may have: librdkafka refuses more, and so does the file queue.
    static let maxPartitions = 100_000

    /// Throws ``KafkaError/Code/configuration`` unless a topic may have `count` partitions (1 to 100,000).
    static func validatePartitionCount(_ count: Int, what: String = "A topic") throws {
        guard (1...maxPartitions).contains(count) else {
            throw KafkaError(
                code: .configuration,
                reason: "\(what) needs 1 to \(maxPartitions) partitions, not \(count)"
            )
        }
    }

    /// An ASCII letter or digit, `.`, `_` or `-`.
    static func isLegal(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x5F || byte == 0x2D || byte == 0x2E
    }
}
