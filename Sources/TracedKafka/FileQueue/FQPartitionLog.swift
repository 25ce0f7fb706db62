import Logging

/// One partition's log file: scanning its records, appending under its lock, repairing a torn tail.
///
/// Appends happen only under the file's exclusive `flock`, by any process. A writer that dies mid-append leaves a
/// torn tail: a record cut short (or zeros, after a machine crash), with nothing intact after it. Whoever next holds
/// the exclusive lock (a writer before it appends, or a reader that finds the tail) truncates it, since no append
/// can be in flight then. A whole record with a wrong checksum is corruption wherever it is, never truncated.
/// Not thread-safe: one object per thread.
final class FQPartitionLog {
    let file: FQFile
    private static let chunkSize = 128 << 10

    init(file: FQFile) {
        self.file = file
    }

    /// Truncates the torn tail that starts at `position`. Call with the exclusive lock held.
    func truncateTornTail(at position: Int64, logger: Logger) throws {
        let size = try file.size
        logger.warning(
            "Truncating a torn tail (a writer died mid-append)",
            metadata: ["file": "\(file.path)", "offset": "\(position)", "bytes": "\(size - position)"]
        )
        try file.truncate(to: position)
    }

    /// How a scan ended.
    enum ScanEnd {
        /// Every byte up to `position`, the end of the file, was a whole record.
        case end(Int64)
        /// The visitor declined the record at `position`.
        case stopped(Int64)
        /// From `position` on, a record cut short (its frame or body runs past the end of the file) or zero bytes,
        /// and nothing intact after them (nor a whole record whose length field alone is wrong): an append in
        /// flight, or a torn tail left by a crash.
        case incomplete(Int64)
        /// Damaged bytes at `position` (a frame with a wrong marker, length or checksum, or one whose length runs
        /// past the end of the file), and an intact record at `next`.
        case damaged(at: Int64, reason: String, next: Int64, nextOffset: Int64)
        /// Damaged bytes at `position` that are whole, not zeros, and last in the file (or a last record whole but
        /// for its length field): corruption, not a torn tail.
        case damagedTail(at: Int64, reason: String)
    }

    /// Reads the records from `position` on (the position of a record, or the end of the file header), calling
    /// `visit` with each whole record's bytes and position until it returns `false`.
    /// - Parameter lastOffset: The offset of the record before `position`, if known: after damage, only a record
    ///   with a higher offset counts as intact (so bytes that merely look like a record inside a value don't).
    func scan(
        from position: Int64,
        after lastOffset: Int64 = -1,
        _ visit: (UnsafeRawBufferPointer, Int64) -> Bool
    ) throws -> ScanEnd {
        let size = try file.size
        var position = position
        var lastOffset = lastOffset
        var chunk = Self.chunkSize
        while position < size {
            let wanted = Int(min(Int64(chunk), size - position))
            let bytes = try file.read(at: position, count: wanted)
            // A short read means the file shrank since it was measured (a torn tail truncated): this is its end now.
            let reachesEnd = bytes.count < wanted || position + Int64(bytes.count) >= size
            var consumed = 0
            var outcome: ScanEnd?
            var damage: String?
            /// A frame whose announced size runs past the end of the file.
            var overrun: Int?
            bytes.withUnsafeBytes { raw in
                while consumed < raw.count, outcome == nil, damage == nil, overrun == nil {
                    let rest = UnsafeRawBufferPointer(rebasing: raw[consumed...])
                    switch FQRecordCodec.frame(at: rest) {
                    case .record(let recordSize):
                        let record = UnsafeRawBufferPointer(rebasing: rest[..<recordSize])
                        guard visit(record, position + Int64(consumed)) else {
                            outcome = .stopped(position + Int64(consumed))
                            return
                        }
                        lastOffset = max(lastOffset, FQRecordCodec.offset(at: record))
                        consumed += recordSize
                    case .incomplete(let recordSize?) where position + Int64(consumed) + Int64(recordSize) > size:
                        overrun = recordSize
                    case .incomplete:
                        // Fewer than a frame's bytes left in the file, or a record that crosses the chunk's end.
                        if reachesEnd { outcome = .incomplete(position + Int64(consumed)) }
                        return
                    case .damaged(let reason):
                        damage = reason
                    }
                }
            }
            if let outcome { return outcome }
            let at = position + Int64(consumed)
            if let overrun {
                // A record cut short by a crash, or an append in flight — or a damaged length field. Only the first
                // has nothing intact after it; a record whose length alone was damaged is whole up to the end.
                let reason = "record length \(overrun - FQRecordCodec.frameSize) runs past the end of the file"
                if let next = try nextIntactRecord(after: at, size: size, lastOffset: lastOffset) {
                    return .damaged(at: at, reason: reason, next: next.position, nextOffset: next.offset)
                }
                let tail = try file.read(at: at, count: Int(size - at))
                let whole = tail.withUnsafeBytes { FQRecordCodec.isWholeRecordWithDamagedLength($0) }
                return whole ? .damagedTail(at: at, reason: reason) : .incomplete(at)
            }
            if let damage {
                if let next = try nextIntactRecord(after: at, size: size, lastOffset: lastOffset) {
                    return .damaged(at: at, reason: damage, next: next.position, nextOffset: next.offset)
                }
                // Zeros at the end are what a machine crash leaves in blocks that were never written: a torn tail.
                return try isZeroFilled(from: at, size: size) ? .incomplete(at) : .damagedTail(at: at, reason: damage)
            }
            if bytes.isEmpty { return .end(position) }
            // A record crosses the chunk's end: read on from it, with a bigger chunk if it alone is larger.
            if consumed == 0 { chunk = min(chunk * 2, FQRecordCodec.maxBodySize + FQRecordCodec.frameSize) }
            position += Int64(consumed)
        }
        return .end(position)
    }

    /// The position and offset of the first intact record after `position` whose offset is above `lastOffset`, or
    /// `nil` when there is none before the end. Reads a chunk at a time, and a candidate record whole.
    private func nextIntactRecord(after position: Int64, size: Int64, lastOffset: Int64) throws -> (position: Int64, offset: Int64)? {
        var start = position + 1
        while start + Int64(FQRecordCodec.frameSize) <= size {
            let bytes = try file.read(at: start, count: Int(min(Int64(Self.chunkSize), size - start)))
            guard bytes.count >= FQRecordCodec.frameSize else { return nil }
            for index in 0...(bytes.count - FQRecordCodec.frameSize) where bytes[index] == 0x54 && bytes[index + 1] == 0x4B && bytes[index + 2] == 0x46 && bytes[index + 3] == 0x51 {
                let candidate = start + Int64(index)
                if let offset = try intactRecordOffset(at: candidate, size: size, lastOffset: lastOffset) {
                    return (candidate, offset)
                }
            }
            start += Int64(bytes.count - FQRecordCodec.frameSize + 1)
        }
        return nil
    }

    /// The offset of the record at `position` when it is intact and its offset is above `lastOffset`.
    private func intactRecordOffset(at position: Int64, size: Int64, lastOffset: Int64) throws -> Int64? {
        let frame = try file.read(at: position, count: FQRecordCodec.frameSize)
        let length = frame.withUnsafeBytes { raw -> Int64? in
            guard raw.count == FQRecordCodec.frameSize,
                UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)) == FQRecordCodec.recordMagic
            else { return nil }
            return Int64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        }
        guard let length, length <= Int64(FQRecordCodec.maxBodySize),
            position + Int64(FQRecordCodec.frameSize) + length <= size
        else { return nil }
        let record = try file.read(at: position, count: FQRecordCodec.frameSize + Int(length))
        return record.withUnsafeBytes { raw in
            guard case .record = FQRecordCodec.frame(at: raw) else { return nil }
            let offset = FQRecordCodec.offset(at: raw)
            return offset > lastOffset ? offset : nil
        }
    }

    private func isZeroFilled(from position: Int64, size: Int64) throws -> Bool {
        var start = position
        while start < size {
            let bytes = try file.read(at: start, count: Int(min(Int64(Self.chunkSize), size - start)))
            guard !bytes.isEmpty else { return true }
            if bytes.contains(where: { $0 != 0 }) { return false }
            start += Int64(bytes.count)
        }
        return true
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
