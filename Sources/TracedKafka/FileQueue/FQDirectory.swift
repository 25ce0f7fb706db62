#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The layout of a file-queue directory (version 2; version 1 is read and written in its own layout):
///
/// ```
/// tracedkafka-queue                     "TracedKafka file queue\nformat-version: 2\n"
/// topics/<topic>/partitions             the partition count, as decimal text
/// topics/<topic>/<partition>.log        the partition's records
/// groups/<group>/group-id               the whole group id, for a group directory named by its hash
/// groups/<group>/members/<member>       one per live consumer, flock-ed by it while it lives
/// groups/<group>/locks/<topic>/<p>      flock-ed by the member that owns the partition (v1: locks/<topic>.<p>)
/// groups/<group>/offsets/<topic>/<p>    the committed offset, as decimal text (v1: offsets/<topic>.<p>)
/// ```
///
/// Topic names are Kafka's (letters, digits, `.`, `_`, `-`; at most 249; not `.` or `..`), so a topic never names a
/// path outside its directory; group ids are percent-encoded into one path component, and one whose encoding is
/// long is named by a prefix and a hash, so no file name depends on the length of a valid name.
struct FQDirectory: Sendable {
    static let markerName = "tracedkafka-queue"
    /// The layout new directories get.
    static let formatVersion = 2
    /// The layouts this code reads and writes.
    static let readableVersions = 1...2
    /// The longest encoded group id used as a directory name as it is; longer ones are hashed.
    static let maxPlainGroupComponent = 200

    let root: String
    /// The directory's layout version, from its marker.
    let version: Int

    /// Opens a queue directory, creating it (and its format marker) when missing. Opening one that exists writes
    /// nothing, so consumers and producers can start on a full disk.
    /// - Throws: ``KafkaError/Code/fileQueue`` when the directory can't be created or read, or holds a queue of a
    ///   format version this code does not read.
    init(path: String) throws {
        guard !path.isEmpty else { throw KafkaError(code: .fileQueue, reason: "The file queue's directory is empty") }
        let root = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.root = root
        let markerPath = "\(root)/\(Self.markerName)"
        var marker = try FQFile.text(at: markerPath)
        if marker == nil {
            do {
                try FQFile.makeDirectory(root + "/topics")
                try FQFile.makeDirectory(root + "/groups")
                try FQFile.createOnce(markerPath, with: "TracedKafka file queue\nformat-version: \(Self.formatVersion)\n")
            } catch let error as KafkaError {
                throw KafkaError(code: .fileQueue, reason: "Cannot use \(path) as a file queue: \(error.reason)")
            }
            // Another process may have created it first, with its own version.
            marker = try FQFile.text(at: markerPath)
        }
        let version = marker?.split(separator: "\n").first { $0.hasPrefix("format-version: ") }
            .flatMap { Int($0.dropFirst("format-version: ".count)) }
        guard let version else {
            throw KafkaError(code: .fileQueue, reason: "\(markerPath) is not a TracedKafka file-queue marker")
        }
        guard Self.readableVersions.contains(version) else {
            throw KafkaError(
                code: .fileQueue,
                reason: "\(markerPath) is in file-queue format version \(version); this TracedKafka reads versions "
                    + "\(Self.readableVersions.lowerBound) to \(Self.readableVersions.upperBound)"
            )
        }
        self.version = version
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


    // MARK: - Topics

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
    /// - Returns: The topic's partition count, and whether this call created it.
    @discardableResult
    func createTopic(_ topic: String, partitions: Int) throws -> (count: Int, created: Bool) {
        if let count = try partitionCount(of: topic) { return (count, false) }
        // Built aside, then renamed into place: a reader sees the topic whole or not at all.
        let staging = "\(root)/topics/.staging-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FQFile.makeDirectory(staging)
        try FQFile(creating: "\(staging)/partitions").write(Array("\(partitions)\n".utf8), at: 0)
        if rename(staging, topicDirectory(topic)) == 0 { return (partitions, true) }
        unlink("\(staging)/partitions")
        rmdir(staging)
        guard let count = try partitionCount(of: topic) else {
            throw FQFile.error("Cannot create the topic directory \(topicDirectory(topic))")
        }
        return (count, false)
    }

    /// Deletes a topic: its directory is renamed aside (so nobody sees half of it), then removed with the groups'
    /// committed offsets for it. Producers with the topic open notice at their next append and fail it.
    /// - Throws: ``KafkaError/Code/unknownPartition`` when there is no such topic.
    func deleteTopic(_ topic: String) throws {
        guard try partitionCount(of: topic) != nil else {
            throw KafkaError(code: .unknownPartition, reason: "No topic '\(topic)' in \(root)")
        }
        let aside = "\(root)/topics/.deleting-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard rename(topicDirectory(topic), aside) == 0 else {
            if errno == ENOENT { throw KafkaError(code: .unknownPartition, reason: "No topic '\(topic)' in \(root)") }
            throw FQFile.error("Cannot delete the topic directory \(topicDirectory(topic))")
        }
        try? FileManager.default.removeItem(atPath: aside)
        for group in FQFile.names(in: "\(root)/groups") {
            let offsets = "\(root)/groups/\(group)/offsets"
            if version >= 2 {
                try? FileManager.default.removeItem(atPath: "\(offsets)/\(topic)")
            } else {
                for name in FQFile.names(in: offsets) where name.hasPrefix("\(topic).") { unlink("\(offsets)/\(name)") }
            }
        }
    }

    // MARK: - Groups

    func groupDirectory(_ group: String) -> String { "\(root)/groups/\(groupComponent(group))" }
    func membersDirectory(_ group: String) -> String { "\(groupDirectory(group))/members" }

    /// The directory that holds the partitions' lock files of one topic (version 2), or the locks directory.
    func lockDirectory(_ group: String, _ topic: String) -> String { perTopicDirectory("locks", group, topic) }

    func lockPath(_ group: String, _ partition: KafkaTopicPartition) -> String { perPartitionPath("locks", group, partition) }

    /// The directory that holds the committed offsets of one topic (version 2), or the offsets directory.
    func offsetDirectory(_ group: String, _ topic: String) -> String { perTopicDirectory("offsets", group, topic) }

    func offsetPath(_ group: String, _ partition: KafkaTopicPartition) -> String { perPartitionPath("offsets", group, partition) }

    /// The directory of a group's `kind` files (`locks` or `offsets`) for one topic: a directory of its own from
    /// version 2; in version 1, one directory for all topics.
    private func perTopicDirectory(_ kind: String, _ group: String, _ topic: String) -> String {
        version == 1 ? "\(groupDirectory(group))/\(kind)" : "\(groupDirectory(group))/\(kind)/\(topic)"
    }

    /// A partition's file in `kind` of a group: named by its number in its topic's directory (version 2), or by
    /// topic and number (version 1).
    private func perPartitionPath(_ kind: String, _ group: String, _ partition: KafkaTopicPartition) -> String {
        let directory = perTopicDirectory(kind, group, partition.topic)
        return version == 1 ? "\(directory)/\(partition.topic).\(partition.partition)" : "\(directory)/\(partition.partition)"
    }

    /// Creates the group's directories; for a group named by its hash, records its whole id there, or checks the
    /// one recorded (two ids with one hash are refused, never mixed). Writes nothing when they exist.
    func prepareGroup(_ group: String) throws {
        for sub in ["members", "locks", "offsets"] { try FQFile.makeDirectory("\(groupDirectory(group))/\(sub)") }
        guard version >= 2, Self.pathComponent(group).utf8.count > Self.maxPlainGroupComponent else { return }
        let path = "\(groupDirectory(group))/group-id"
        if try FQFile.text(at: path) == nil { try FQFile.createOnce(path, with: group) }
        guard try FQFile.text(at: path) == group else {
            throw KafkaError(
                code: .fileQueue,
                reason: "The group directory \(groupDirectory(group)) belongs to another group id with the same hash"
            )
        }
    }

    /// The group's directory name: its percent-encoding, or for a long one (version 2) a prefix of it, `~` and a
    /// 64-bit FNV-1a hash of the id in hex. `~` is always encoded, so the two forms never meet.
    func groupComponent(_ group: String) -> String {
        let encoded = Self.pathComponent(group)
        guard version >= 2, encoded.utf8.count > Self.maxPlainGroupComponent else { return encoded }
        return Self.prefix(of: encoded, maxBytes: 120) + "~" + Self.hexHash(group)
    }

    /// A member's file name: the client id's encoding, cut to 64 bytes, then the process id and a random part.
    static func memberID(clientID: String?) -> String {
        let name = prefix(of: pathComponent(clientID ?? "consumer"), maxBytes: 64)
        return "\(name)-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
    }

    /// The longest prefix of a percent-encoded name within `maxBytes` that does not split a `%XX`.
    private static func prefix(of encoded: String, maxBytes: Int) -> String {
        var bytes = Array(encoded.utf8.prefix(maxBytes))
        if let percent = bytes.suffix(2).lastIndex(of: 0x25) { bytes.removeSubrange(percent...) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// FNV-1a, 64 bits, as 16 hex digits.
    static func hexHash(_ name: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
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
