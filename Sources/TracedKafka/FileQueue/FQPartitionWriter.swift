import Logging

/// Appends to one partition log on behalf of one producer thread.
///
/// Under the log's exclusive lock it catches up with what other writers appended since its last append (to learn
/// the next offset), truncates a torn tail left by a crashed writer, and writes a whole batch with one `pwrite`.
final class FQPartitionWriter {
    private let log: FQPartitionLog
    private let logger: Logger
    private var initialized = false
    /// The end of the last whole record this writer knows of.
    private var knownEnd = Int64(FQRecordCodec.fileHeaderSize)
    private var nextOffset: Int64 = 0
    /// Appended since the last `sync()`.
    private(set) var isDirty = false

    init(path: String, logger: Logger) throws {
        log = FQPartitionLog(file: try FQFile(creating: path))
        self.logger = logger
    }

    /// An append that failed after `written` of its records were appended (and synced) whole and acknowledged.
    /// Records after those may still have reached the file whole: they keep their offsets, but fail.
    struct Failure: Error {
        var first: Int64
        var written: Int
        var error: any Error
    }

    /// One record to append.
    struct Entry {
        var key: KafkaBytes?
        var value: KafkaBytes?
        var headers: KafkaHeaders
        var timestampMilliseconds: Int64
        /// ``FQRecordCodec/encodedSize(key:value:headers:)``, measured when the record was offered.
        var size: Int
    }

    /// Appends the entries in order.
    /// - Parameter syncEach: `fsync` after every record (else the caller decides when to sync).
    /// - Returns: The offset of the first entry; the rest follow one by one.
    func append(_ entries: [Entry], syncEach: Bool) throws -> Int64 {
        try log.file.withExclusiveLock {
            // The topic was deleted under this writer: its records would go into a file nobody reads.
            if try log.file.isUnlinked {
                throw KafkaError(code: .unknownPartition, reason: "The topic of \(log.file.path) was deleted")
            }
            if !initialized {
                _ = try log.checkHeader(writable: true)
                initialized = true
            }
            try catchUp()
            let first = nextOffset
            var bytes: [UInt8] = []
            bytes.reserveCapacity(entries.reduce(0) { $0 + $1.size })
            do {
                for (index, entry) in entries.enumerated() {
                    FQRecordCodec.encode(
                        offset: first + Int64(index), timestampMilliseconds: entry.timestampMilliseconds,
                        key: entry.key, value: entry.value, headers: entry.headers, into: &bytes
                    )
                    if syncEach {
                        // Each record is whole and synced before the next: a later failure keeps it.
                        try log.file.write(bytes, at: knownEnd)
                        try log.file.sync()
                        knownEnd += Int64(bytes.count)
                        nextOffset += 1
                        bytes.removeAll(keepingCapacity: true)
                    }
                }
                if !bytes.isEmpty {
                    try log.file.write(bytes, at: knownEnd)
                    knownEnd += Int64(bytes.count)
                    nextOffset += Int64(entries.count)
                }
            } catch {
                // A failed write or sync (a full disk…). What was acknowledged (written whole and synced, per record)
                // stays acknowledged. Records that reached the file whole stay too: readers take no lock and may
                // have delivered them, so their offsets must never be handed out again; their senders still get the
                // error (not known to be durable). Only a partial record behind them is cut, so no writer appends
                // after half a record.
                let acknowledged = Int(nextOffset - first)
                let reached = ((try? log.file.size) ?? knownEnd) - knownEnd
                var whole = 0, wholeBytes: Int64 = 0
                // An entry's `size` is its framed size: the records after the acknowledged ones, in order.
                for entry in entries.dropFirst(acknowledged) {
                    guard wholeBytes + Int64(entry.size) <= reached else { break }
                    whole += 1
                    wholeBytes += Int64(entry.size)
                }
                try? log.file.truncate(to: knownEnd + wholeBytes)
                knownEnd += wholeBytes
                nextOffset += Int64(whole)
                throw FQPartitionWriter.Failure(first: first, written: acknowledged, error: error)
            }
            isDirty = !syncEach
            return first
        }
    }

    func sync() throws {
        guard isDirty else { return }
        try log.file.sync()
        isDirty = false
    }

    /// Reads what other writers appended since this one last wrote, to learn the next offset; truncates a torn tail.
    /// Call with the exclusive lock held.
    private func catchUp() throws {
        if try log.file.size < knownEnd {
            // Only torn tails are truncated, and this writer never counts one: read the file again to be safe,
            // keeping offsets rising (an offset once handed out is never handed out again).
            knownEnd = Int64(FQRecordCodec.fileHeaderSize)
        }
        var position = knownEnd
        while true {
            var last: Int64?
            let end = try log.scan(from: position, after: nextOffset - 1) { bytes, _ in
                last = FQRecordCodec.offset(at: bytes)
                return true
            }
            if let last, last < Int64.max { nextOffset = max(nextOffset, last + 1) }
            switch end {
            case .end(let at), .stopped(let at):
                knownEnd = at
                return
            case .incomplete(let at):
                try log.truncateTornTail(at: at, logger: logger)
                knownEnd = at
                return
            case .damaged(let at, let reason, let next, _):
                // Corruption inside the log is the readers' to report; the writer only needs the end.
                logCorruption(at: at, reason: reason)
                position = next
            case .damagedTail(let at, let reason):
                // Kept for the readers to report; new records go after it (its offset is never reused as data).
                logCorruption(at: at, reason: reason)
                knownEnd = try log.file.size
                // The damaged record may have been read before it was damaged: its offset is skipped, not reused.
                nextOffset += 1
                return
            }
        }
    }

    private func logCorruption(at position: Int64, reason: String) {
        logger.error(
            "Corrupt record in a file-queue log",
            metadata: ["file": "\(log.file.path)", "offset": "\(position)", "reason": "\(reason)"]
        )
    }
}
