import NIOCore
import TracedKafka

// MARK: - KafkaConsumerMessage + ByteBuffer

extension KafkaConsumerMessage {
    /// The key in a new `ByteBuffer`, or `nil` when the record has no key (an empty key is an empty buffer).
    ///
    /// Each read copies the key once, from where the message holds it (librdkafka's copy of the record, or the file
    /// queue's) into the buffer: no intermediate array. Read it once and keep the buffer.
    public var keyBuffer: ByteBuffer? { keyBuffer(allocator: ByteBufferAllocator()) }

    /// The value in a new `ByteBuffer`, or `nil` for a tombstone (an empty value is an empty buffer).
    ///
    /// Each read copies the value once, from where the message holds it into the buffer: no intermediate array.
    /// Read it once and keep the buffer.
    public var valueBuffer: ByteBuffer? { valueBuffer(allocator: ByteBufferAllocator()) }

    /// The key in a new `ByteBuffer` from `allocator` (a channel's, for example), or `nil` when the record has no
    /// key. The key is copied once, from where the message holds it into the buffer.
    /// - Parameter allocator: The allocator of the buffer.
    /// - Returns: The key's bytes, or `nil`.
    public func keyBuffer(allocator: ByteBufferAllocator) -> ByteBuffer? {
        withUnsafeKeyBytes { $0.map { allocator.buffer(bytes: $0) } }
    }

    /// The value in a new `ByteBuffer` from `allocator` (a channel's, for example), or `nil` for a tombstone. The
    /// value is copied once, from where the message holds it into the buffer.
    /// - Parameter allocator: The allocator of the buffer.
    /// - Returns: The value's bytes, or `nil`.
    public func valueBuffer(allocator: ByteBufferAllocator) -> ByteBuffer? {
        withUnsafeValueBytes { $0.map { allocator.buffer(bytes: $0) } }
    }
}
