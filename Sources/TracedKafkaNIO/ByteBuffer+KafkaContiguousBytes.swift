import NIOCore
import TracedKafka

// MARK: - ByteBuffer + KafkaContiguousBytes

/// A `ByteBuffer` is a record's key, value or header value as it is: its readable bytes (from `readerIndex` to
/// `writerIndex`), read in place when the record is enqueued, never the rest of its storage. A slice or a buffer
/// that was partly read sends only what is left to read.
extension ByteBuffer: KafkaContiguousBytes {
    /// Calls `body` with the buffer's readable bytes, in place (`withUnsafeReadableBytes`): no copy.
    ///
    /// A `ByteBuffer` is a value, so the bytes a record holds cannot change after it was made; as for any type that
    /// is not an array, a string or `Data`, the file queue copies them once when it takes the record, and librdkafka
    /// copies them when it enqueues it.
    /// - Parameter body: A closure that reads the bytes, valid only while it runs.
    /// - Returns: What `body` returns.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeReadableBytes { try body($0) }
    }
}
