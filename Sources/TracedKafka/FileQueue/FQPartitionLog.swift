/// One partition's log file: scanning its records, appending under its lock, repairing a torn tail.
///
/// Appends happen only under the file's exclusive `flock`, by any process. A writer that dies mid-append leaves a
/// torn tail: bytes that are not a whole record, with nothing intact after them. Whoever next holds the exclusive
/// lock (a writer before it appends, or a reader that finds the tail) truncates it, since no append can be in
/// flight then. Damaged bytes followed by an intact record are corruption, never a torn tail.
/// Not thread-safe: one object per thread.
final class FQPartitionLog {
    let file: FQFile
    let partition: KafkaTopicPartition
    private static let chunkSize = 128 << 10

    init(file: FQFile, partition: KafkaTopicPartition) {
        self.file = file
        self.partition = partition
    }

    /// How a scan ended.
    enum ScanEnd: Equatable {
        /// Every byte up to `position`, the end of the file, was a whole record.
        case end(Int64)
        /// The visitor declined the record at `position`.
        case stopped(Int64)
        /// From `position` on, bytes that are not (yet) a whole record, and nothing intact after them: an append in
        /// flight, or a torn tail.
        case incomplete(Int64)
        /// Damaged bytes at `position`, and an intact record at `next`.
        case damaged(at: Int64, reason: String, next: Int64)
    }

    /// Reads the records from `position` on (the position of a record, or the end of the file header), calling
    /// `visit` with each whole record's bytes and position until it returns `false`.
    func scan(from position: Int64, _ visit: (UnsafeRawBufferPointer, Int64) -> Bool) throws -> ScanEnd {
        let size = try file.size
        var position = position
        var chunk = Self.chunkSize
        while position < size {
            let bytes = try file.read(at: position, count: Int(min(Int64(chunk), size - position)))
            let reachesEnd = position + Int64(bytes.count) >= size
            var consumed = 0
            var outcome: ScanEnd?
            var damage: String?
            bytes.withUnsafeBytes { raw in
                while consumed < raw.count, outcome == nil, damage == nil {
                    let rest = UnsafeRawBufferPointer(rebasing: raw[consumed...])
                    switch FQRecordCodec.frame(at: rest) {
                    case .record(let recordSize):
                        guard visit(UnsafeRawBufferPointer(rebasing: rest[..<recordSize]), position + Int64(consumed))
                        else {
                            outcome = .stopped(position + Int64(consumed))
                            return
                        }
                        consumed += recordSize
                    case .incomplete:
                        if reachesEnd { outcome = .incomplete(position + Int64(consumed)) }
                        return
                    case .damaged(let reason):
                        damage = reason
                    }
                }
            }
            if let outcome { return outcome }
            if let damage {
                let at = position + Int64(consumed)
                guard let next = try nextIntactRecord(after: at, size: size) else { return .incomplete(at) }
                return .damaged(at: at, reason: damage, next: next)
            }
            // A record crosses the chunk's end: read on from it, with a bigger chunk if it alone is larger.
            if consumed == 0 { chunk *= 2 }
            position += Int64(consumed)
        }
        return .end(position)
    }

    /// The position of the first intact record after `position`, or `nil` when there is none before the end.
    private func nextIntactRecord(after position: Int64, size: Int64) throws -> Int64? {
        let bytes = try file.read(at: position + 1, count: Int(size - position - 1))
        return bytes.withUnsafeBytes { raw -> Int64? in
            var index = 0
            while index + FQRecordCodec.frameSize <= raw.count {
                if raw[index] == 0x54, case .record = FQRecordCodec.frame(at: UnsafeRawBufferPointer(rebasing: raw[index...])) {
                    return position + 1 + Int64(index)
                }
                index += 1
            }
            return nil
        }
    }

    /// Checks the file header, writing it into an empty file. Call with the exclusive lock held when `writable`.
    /// - Returns: `false` when a reader finds no complete header yet.
    func checkHeader(writable: Bool) throws -> Bool {
        let size = try file.size
        if size < Int64(FQRecordCodec.fileHeaderSize) {
            guard writable else { return false }
            // An empty file, or a header torn by a crash: nothing was ever appended after it.
            try file.truncate(to: 0)
            try file.write(FQRecordCodec.fileHeader(), at: 0)
            return true
        }
        let header = try file.read(at: 0, count: FQRecordCodec.fileHeaderSize)
        let version = header.withUnsafeBytes { FQRecordCodec.version(ofFileHeader: $0) }
        try FQDirectory.check(
            version: version.map(Int.init), of: file.path, expected: Int(FQRecordCodec.formatVersion), what: "file-queue log"
        )
        return true
    }
}
