#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The layout of a file-queue directory (version 1):
///
/// ```
/// tracedkafka-queue                     "TracedKafka file queue\nformat-version: 1\n"
/// topics/<topic>/partitions             the partition count, as decimal text
/// topics/<topic>/<partition>.log        the partition's records
/// groups/<group>/members/<member>       one per live consumer, flock-ed by it while it lives
/// groups/<group>/locks/<topic>.<p>      flock-ed by the member that owns the partition
/// groups/<group>/offsets/<topic>.<p>    the committed offset, as decimal text
/// ```
///
/// Topic names are Kafka's (letters, digits, `.`, `_`, `-`; at most 249; not `.` or `..`), so a topic never names a
/// path outside its directory; group ids are percent-encoded into one path component.
struct FQDirectory: Sendable {
    static let markerName = "tracedkafka-queue"
    static let formatVersion = 1

    let root: String

    /// Opens a queue directory, creating it (and its format marker) when missing.
    /// - Throws: ``KafkaError/Code/fileQueue`` when the directory can't be created or written, or holds a queue of
    ///   another format version.
    init(path: String) throws {
        guard !path.isEmpty else { throw KafkaError(code: .fileQueue, reason: "The file queue's directory is empty") }
        root = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        do {
            try FQFile.makeDirectory(root + "/topics")
            try FQFile.makeDirectory(root + "/groups")
            try FQFile.createOnce(markerPath, with: "TracedKafka file queue\nformat-version: \(Self.formatVersion)\n")
        } catch let error as KafkaError {
            throw KafkaError(code: .fileQueue, reason: "Cannot use \(path) as a file queue: \(error.reason)")
        }
        let marker = try FQFile.text(at: markerPath) ?? ""
        let version = marker.split(separator: "\n").first { $0.hasPrefix("format-version: ") }
            .flatMap { Int($0.dropFirst("format-version: ".count)) }
        try Self.check(version: version, of: markerPath, expected: Self.formatVersion, what: "file-queue marker")
    }

    /// Throws a ``KafkaError/Code/fileQueue`` error unless a file's format version is the one this code reads.
    static func check(version: Int?, of path: String, expected: Int, what: String) throws {
        guard let version else {
            throw KafkaError(code: .fileQueue, reason: "\(path) is not a TracedKafka \(what)")
        }
        guard version == expected else {
            throw KafkaError(
                code: .fileQueue,
                reason: "\(path) is in file-queue format version \(version); this TracedKafka reads version \(expected) only"
            )
        }
    }

    private var markerPath: String { "\(root)/\(Self.markerName)" }

    // MARK: - Topics

    /// Throws unless `topic` is a valid Kafka topic name.
    static func validate(topic: String, code: KafkaError.Code) throws {
        let allowed = topic.utf8.allSatisfy { isPlain($0) || $0 == 0x2E }
        guard allowed, !topic.isEmpty, topic.utf8.count <= 249, topic != ".", topic != ".." else {
            throw KafkaError(
                code: code,
                reason: "Topic name \(String(reflecting: topic)) is not valid: Kafka topic names use only letters, "
                    + "digits, '.', '_' and '-', at most 249 of them, and are not '.' or '..'"
            )
        }
    }

    func topicDirectory(_ topic: String) -> String { "\(root)/topics/\(topic)" }

    func logPath(_ partition: KafkaTopicPartition) -> String {
        "\(topicDirectory(partition.topic))/\(partition.partition).log"
    }

    /// The topic's partition count, or `nil` when the topic does not exist yet.
    func partitionCount(of topic: String) throws -> Int? {
        guard let text = try FQFile.text(at: "\(topicDirectory(topic))/partitions") else { return nil }
        guard let count = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), count > 0 else {
            throw KafkaError(code: .fileQueue, reason: "\(topicDirectory(topic))/partitions holds no partition count")
        }
        return count
    }

    /// Creates the topic unless it exists; racing processes agree on one partition count.
    /// - Returns: The topic's partition count.
    func createTopic(_ topic: String, partitions: Int) throws -> Int {
        if let count = try partitionCount(of: topic) { return count }
        // Built aside, then renamed into place: a reader sees the topic whole or not at all.
        let staging = "\(root)/topics/.staging-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FQFile.makeDirectory(staging)
        try FQFile(creating: "\(staging)/partitions").write(Array("\(partitions)\n".utf8), at: 0)
        if rename(staging, topicDirectory(topic)) == 0 { return partitions }
        unlink("\(staging)/partitions")
        rmdir(staging)
        guard let count = try partitionCount(of: topic) else {
            throw FQFile.error("Cannot create the topic directory \(topicDirectory(topic))")
        }
        return count
    }

    // MARK: - Groups

    func groupDirectory(_ group: String) -> String { "\(root)/groups/\(Self.pathComponent(group))" }
    func membersDirectory(_ group: String) -> String { "\(groupDirectory(group))/members" }
    func lockPath(_ group: String, _ partition: KafkaTopicPartition) -> String {
        "\(groupDirectory(group))/locks/\(partition.topic).\(partition.partition)"
    }
    func offsetPath(_ group: String, _ partition: KafkaTopicPartition) -> String {
        "\(groupDirectory(group))/offsets/\(partition.topic).\(partition.partition)"
    }

    /// An ASCII letter or digit, `_` or `-`.
    private static func isPlain(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x5F || byte == 0x2D
    }

    /// Letters, digits, `_` and `-` as they are; every other byte as `%XX`. Never `.`, `..` or a `/`.
    static func pathComponent(_ name: String) -> String {
        var result = ""
        for byte in name.utf8 {
            if isPlain(byte) {
                result.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
