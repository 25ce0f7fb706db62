/// The byte layout of the file queue's partition logs (version 1; `Docs/FileQueueFormat.md` describes it).
///
/// A log starts with a 16-byte file header — the magic `TKFQLOG\0` and the format version (UInt32 LE) followed by
/// 4 reserved zero bytes — and continues with records, each a 12-byte frame (magic `TKFQ`, body length, CRC-32C of
/// the body; all UInt32 LE) and the body: offset (Int64), timestamp in ms since 1970 (Int64), key and value
/// (Int32 length, -1 for nil, then the bytes), the header count (UInt32) and each header (UInt32 key length, UTF-8
/// key (its bytes, exactly as produced), Int32 value length or -1, value).
enum FQRecordCodec {
    static let formatVersion: UInt32 = 1
    static let fileMagic: [UInt8] = Array("TKFQLOG\0".utf8)
    static let fileHeaderSize = 16
    static let recordMagic: UInt32 = 0x5146_4B54  // "TKFQ" in little-endian byte order
    static let frameSize = 12
    /// The largest body accepted, so a damaged length field can't ask for gigabytes.
    static let maxBodySize = 64 << 20
    /// The largest record (key, value, header keys and values) whose body stays within ``maxBodySize`` whatever
    /// its header count: 1 MiB is left for the fields' lengths.
    static let maxRecordBytes = maxBodySize - (1 << 20)

    /// A decoded record and where it sits in the file.
    struct Record {
        var offset: Int64
        var timestampMilliseconds: Int64
        var key: [UInt8]?
        var value: [UInt8]?
        var headers: KafkaHeaders
    }

    static func fileHeader() -> [UInt8] {
        var bytes = fileMagic
        append(formatVersion, to: &bytes)
        append(UInt32(0), to: &bytes)
        return bytes
    }

    /// The format version of a file header, or `nil` when the bytes are not a file-queue log.
    static func version(ofFileHeader bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard bytes.count >= fileHeaderSize, Array(bytes[0..<8]) == fileMagic else { return nil }
        return bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
    }

    /// The encoded size of a record, frame included.
    static func encodedSize(key: KafkaBytes?, value: KafkaBytes?, headers: KafkaHeaders) -> Int {
        var size = frameSize + 8 + 8 + 4 + (key?.count ?? 0) + 4 + (value?.count ?? 0) + 4
        for header in headers { size += 4 + header.keyByteCount + 4 + (header.valueBytes?.count ?? 0) }
        return size
    }

    /// Appends one framed record to `bytes`.
    static func encode(
        offset: Int64,
        timestampMilliseconds: Int64,
        key: KafkaBytes?,
        value: KafkaBytes?,
        headers: KafkaHeaders,
        into bytes: inout [UInt8]
    ) {
        let start = bytes.count
        append(recordMagic, to: &bytes)
        append(UInt32(0), to: &bytes)  // body length, patched below
        append(UInt32(0), to: &bytes)  // checksum, patched below
        append(UInt64(bitPattern: offset), to: &bytes)
        append(UInt64(bitPattern: timestampMilliseconds), to: &bytes)
        appendOptional(key, to: &bytes)
        appendOptional(value, to: &bytes)
        append(UInt32(headers.count), to: &bytes)
        for header in headers {
            header.withKeyBytes { key in
                append(UInt32(key.count), to: &bytes)
                bytes.append(contentsOf: key)
            }
            appendOptional(header.valueBytes, to: &bytes)
        }
        let bodyStart = start + frameSize
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[bodyStart...])) }
        patch(UInt32(bytes.count - bodyStart), in: &bytes, at: start + 4)
        patch(crc, in: &bytes, at: start + 8)
    }

    /// What sits at the start of `bytes`.
    enum Frame {
        /// A whole record with a good checksum, `size` bytes long.
        case record(size: Int)
        /// Not enough bytes for the frame (`size` is `nil`) or for the `size` bytes the frame announces.
        case incomplete(size: Int?)
        /// Bytes that are not a record: wrong magic, impossible length or wrong checksum.
        case damaged(String)
    }

    static func frame(at bytes: UnsafeRawBufferPointer) -> Frame {
        guard bytes.count >= frameSize else { return .incomplete(size: nil) }
        guard load(UInt32.self, bytes, 0) == recordMagic else { return .damaged("no record marker") }
        let length = Int(load(UInt32.self, bytes, 4))
        guard length >= 28, length <= maxBodySize else { return .damaged("impossible record length \(length)") }
        guard bytes.count >= frameSize + length else { return .incomplete(size: frameSize + length) }
        let body = UnsafeRawBufferPointer(rebasing: bytes[frameSize..<(frameSize + length)])
        guard CRC32C.checksum(body) == load(UInt32.self, bytes, 8) else { return .damaged("checksum mismatch") }
        return .record(size: frameSize + length)
    }

    /// Whether `bytes` — a frame and everything after it to the end of the file, fewer bytes than the frame's length
    /// announces — are one whole record whose length field alone was damaged: the rest's checksum is the frame's.
    static func isWholeRecordWithDamagedLength(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= frameSize + 28, load(UInt32.self, bytes, 0) == recordMagic else { return false }
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[frameSize...])) == load(UInt32.self, bytes, 8)
    }

    /// The offset of the record at the start of `bytes`, which ``frame(at:)`` found whole.
    static func offset(at bytes: UnsafeRawBufferPointer) -> Int64 {
        Int64(bitPattern: load(UInt64.self, bytes, frameSize))
    }

    /// Decodes the record at the start of `bytes`, which ``frame(at:)`` found whole; `nil` when the body's fields
    /// don't add up (a record written by a broken writer, with a valid checksum).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> Record? {
        var reader = Reader(bytes: bytes, position: frameSize)
        guard let offset = reader.int64(), let timestamp = reader.int64(), let key = reader.optionalBytes(),
            let value = reader.optionalBytes(), let count = reader.uint32()
        else { return nil }
        var headers = KafkaHeaders()
        headers.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let keyLength = reader.uint32(), let keyBytes = reader.bytes(Int(keyLength)),
                let headerValue = reader.optionalBytes()
            else { return nil }
            headers.append(KafkaHeader(keyBytes: keyBytes, value: headerValue))
        }
        return Record(offset: offset, timestampMilliseconds: timestamp, key: key, value: value, headers: headers)
    }

    // MARK: - Little-endian helpers

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func appendOptional(_ value: (some KafkaContiguousBytes)?, to bytes: inout [UInt8]) {
        guard let value else { return append(Int32(-1), to: &bytes) }
        value.withUnsafeBytes { value in
            append(Int32(value.count), to: &bytes)
            bytes.append(contentsOf: value)
        }
    }

    private static func patch(_ value: UInt32, in bytes: inout [UInt8], at index: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, byte) in raw.enumerated() { bytes[index + i] = byte }
        }
    }

    private static func load<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, _ at: Int) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    /// Reads fields in order; every read is bounds-checked.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position: Int

        mutating func uint32() -> UInt32? { fixed(UInt32.self) }
        mutating func int64() -> Int64? { fixed(UInt64.self).map { Int64(bitPattern: $0) } }

        mutating func bytes(_ count: Int) -> [UInt8]? {
            guard count >= 0, bytes.count - position >= count else { return nil }
            defer { position += count }
            return Array(bytes[position..<(position + count)])
        }

        /// `.some(nil)` for a nil field (length -1), `nil` when the bytes don't add up.
        mutating func optionalBytes() -> [UInt8]?? {
            guard let raw = fixed(UInt32.self) else { return nil }
            let length = Int32(bitPattern: raw)
            if length == -1 { return .some(nil) }
            guard let value = bytes(Int(length)) else { return nil }
            return .some(value)
        }

        private mutating func fixed<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard bytes.count - position >= MemoryLayout<T>.size else { return nil }
            defer { position += MemoryLayout<T>.size }
            return FQRecordCodec.load(T.self, bytes, position)
        }
    }
}

/// CRC-32C (Castagnoli), the checksum Kafka's own record batches use.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
