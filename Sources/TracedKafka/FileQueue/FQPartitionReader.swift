import Foundation
import Logging

/// Reads one partition log for one consumer, from a starting position on.
///
/// Stops quietly at bytes that are not yet a whole record (an append in flight); repairs a torn tail when it can
/// take the log's exclusive lock (no append is in flight then). Damaged bytes followed by an intact record are
/// checked again under the shared lock, then reported per the corrupt-record policy.
final class FQPartitionReader {
    /// Where reading starts.
    enum Start {
        /// At the first record with this offset or a later one.
        case offset(Int64)
        /// At the oldest record.
        case earliest
        /// After the last record present now.
        case latest
    }

    let partition: KafkaTopicPartition
    private let path: String
    private let policy: KafkaFileQueueConfiguration.CorruptRecordPolicy
    private let logger: Logger
    private var log: FQPartitionLog?
    /// The byte position of the next record, once the file header was read.
    private var position: Int64?
    /// Records below this offset are passed over (a committed position, or everything present for `latest`).
    private var minimumOffset: Int64
    private var skipToEnd: Bool
    /// The offset of the last record delivered (or passed over), so a record is never delivered twice.
    private var lastOffset: Int64 = -1

    init(path: String, partition: KafkaTopicPartition, start: Start, policy: KafkaFileQueueConfiguration.CorruptRecordPolicy, logger: Logger) {
        self.path = path
        self.partition = partition
        self.policy = policy
        self.logger = logger
        switch start {
        case .offset(let offset): (minimumOffset, skipToEnd) = (offset, false)
        case .earliest: (minimumOffset, skipToEnd) = (0, false)
        case .latest: (minimumOffset, skipToEnd) = (.max, true)
        }
    }

    /// Up to `max` new messages of at most `maxBytes` in all (but at least one), and the corrupt ranges skipped on
    /// the way (with the `skip` policy).
    /// - Throws: ``KafkaError/Code/corruptRecord`` under the `fail` policy; ``KafkaError/Code/fileQueue`` for I/O
    ///   errors or a log of another format version.
    func read(max: Int, maxBytes: Int = .max) throws -> (messages: [KafkaConsumerMessage], skipped: [KafkaError]) {
        guard let log = try openLog(), var position = try startPosition(log) else {
            // No log yet: everything written from now on is new, also for `latest`.
            reachedEnd()
            return ([], [])
        }
        if position > (try log.file.size) {
            // The file shrank under this reader (only a failed append truncates whole records): read it again from
            // the start, past what was delivered.
            position = Int64(FQRecordCodec.fileHeaderSize)
        }
        defer { self.position = position }
        var messages: [KafkaConsumerMessage] = []
        var skipped: [KafkaError] = []
        var taken = 0
        while messages.count < max {
            var undecodable: (at: Int64, size: Int)?
            let end = try log.scan(from: position, after: lastOffset) { bytes, at in
                guard messages.count < max else { return false }
                let offset = FQRecordCodec.offset(at: bytes)
                guard offset >= minimumOffset, offset > lastOffset else {
                    return true
                }
                // The framed size: a little more than the message's own bytes, so the bound holds.
                guard messages.isEmpty || taken + bytes.count <= maxBytes else { return false }
                guard let record = FQRecordCodec.decode(bytes) else {
                    undecodable = (at, bytes.count)
                    return false
                }
                messages.append(message(from: record))
                taken += bytes.count
                lastOffset = record.offset
                return true
            }
            switch end {
            case .end(let at):
                position = at
                reachedEnd()
                return (messages, skipped)
            case .incomplete(let at):
                position = at
                repairTornTail(log, at: at)
                reachedEnd()
                return (messages, skipped)
            case .stopped(let at):
                position = at
                guard let undecodable, undecodable.at == at else { return (messages, skipped) }
                let error = corruption(at: at, reason: "the record's fields don't add up")
                guard policy == .skip else { return try messagesBefore(error, messages, skipped) }
                logger.warning("Skipping a corrupt record", metadata: ["error": "\(error)"])
                skipped.append(error)
                position = at + Int64(undecodable.size)
            case .damaged(let at, let reason, let next, let nextOffset):
                position = at
                guard try isConfirmedDamage(log, at: at) else { continue }
                let error = corruption(at: at, reason: reason)
                if nextOffset <= minimumOffset {
                    // Damage below the starting position (a committed offset past it): nothing of it was to be
                    // delivered, so it stops no consumer; it is still logged.
                    logger.warning("Passing over a corrupt record before the starting offset", metadata: ["error": "\(error)"])
                    position = next
                    continue
                }
                guard policy == .skip else { return try messagesBefore(error, messages, skipped) }
                logger.warning("Skipping a corrupt record", metadata: ["error": "\(error)"])
                skipped.append(error)
                position = next
            case .damagedTail(let at, let reason):
                position = at
                guard try isConfirmedDamage(log, at: at) else { continue }
                // With `skip`, wait here until a record follows it (then it is `damaged` and skipped, and reported).
                guard policy == .skip else { return try messagesBefore(corruption(at: at, reason: reason), messages, skipped) }
                return (messages, skipped)
            }
        }
        return (messages, skipped)
    }

    /// The partition's oldest offset and the next offset to be written (0 and 0 for a log not written yet).
    /// Scans the whole log: there is no index.
    func bounds() throws -> (low: Int64, high: Int64) {
        guard let log = try openLog(), try log.checkHeader(writable: false) else { return (0, 0) }
        var low: Int64?
        var high: Int64 = 0
        var position = Int64(FQRecordCodec.fileHeaderSize)
        while true {
            let end = try log.scan(from: position, after: high - 1) { bytes, _ in
                let offset = FQRecordCodec.offset(at: bytes)
                if low == nil { low = offset }
                high = max(high, offset + 1)
                return true
            }
            switch end {
            case .end, .stopped, .incomplete, .damagedTail: return (low ?? high, high)
            case .damaged(_, _, let next, _): position = next
            }
        }
    }

    /// Whether damage found without a lock is still there under the shared lock (an append in flight holds the
    /// exclusive one, so under the shared lock the bytes are final).
    private func isConfirmedDamage(_ log: FQPartitionLog, at position: Int64) throws -> Bool {
        let confirmed = try log.file.withSharedLock { try log.scan(from: position, after: lastOffset) { _, _ in false } }
        switch confirmed {
        case .damaged, .damagedTail: return true
        case .end, .stopped, .incomplete: return false
        }
    }

    /// Under the `fail` policy: the messages read before the damage, or the error when there are none (the next
    /// read starts at the damage again).
    private func messagesBefore(
        _ error: KafkaError,
        _ messages: [KafkaConsumerMessage],
        _ skipped: [KafkaError]
    ) throws -> (messages: [KafkaConsumerMessage], skipped: [KafkaError]) {
        guard !messages.isEmpty else { throw error }
        return (messages, skipped)
    }

    private func openLog() throws -> FQPartitionLog? {
        if let log { return log }
        guard let file = try FQFile.open(path, writable: true) else { return nil }
        log = FQPartitionLog(file: file)
        return log
    }

    private func startPosition(_ log: FQPartitionLog) throws -> Int64? {
        if let position { return position }
        guard try log.checkHeader(writable: false) else { return nil }
        position = Int64(FQRecordCodec.fileHeaderSize)
        return position
    }

    /// After the first pass to the end for `latest`, every later record is delivered.
    private func reachedEnd() {
        if skipToEnd {
            skipToEnd = false
            minimumOffset = 0
        }
    }

    private func repairTornTail(_ log: FQPartitionLog, at position: Int64) {
        do {
            guard try log.file.lock(exclusive: true, wait: false) else { return }
            defer { log.file.unlock() }
            guard case .incomplete(position) = try log.scan(from: position, { _, _ in false }) else { return }
            try log.truncateTornTail(at: position, logger: logger)
        } catch {
            logger.warning("Could not repair a torn tail", metadata: ["file": "\(path)", "error": "\(error)"])
        }
    }

    private func corruption(at position: Int64, reason: String) -> KafkaError {
        KafkaError(code: .corruptRecord, reason: "Corrupt record in \(path) at byte offset \(position): \(reason)")
    }

    private func message(from record: FQRecordCodec.Record) -> KafkaConsumerMessage {
        KafkaConsumerMessage(
            topic: partition.topic,
            partition: partition.partition,
            offset: record.offset,
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: Date(timeIntervalSince1970: Double(record.timestampMilliseconds) / 1000)
        )
    }
}
