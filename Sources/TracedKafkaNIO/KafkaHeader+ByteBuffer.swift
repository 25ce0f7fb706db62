import NIOCore
import TracedKafka

// MARK: - KafkaHeader + ByteBuffer

extension KafkaHeader {
    /// Creates a header whose value is a `ByteBuffer`'s readable bytes, kept without a copy (in `valueBytes`) and
    /// read in place when the record is enqueued.
    ///
    /// Disfavoured, as the `String?` initializer is, so that `KafkaHeader(key:value: nil)` stays a header without a
    /// value rather than an ambiguous call.
    /// - Parameters:
    ///   - key: The header's key.
    ///   - value: The header's value, or `nil` for a header without a value (an empty buffer is an empty value).
    @_disfavoredOverload
    public init(key: String, value: ByteBuffer?) {
        self.init(key: key, value: nil as [UInt8]?)
        self.valueBytes = value.map(KafkaBytes.init)
    }

    /// The value in a new `ByteBuffer`, or `nil` for a header without a value (an empty value is an empty buffer).
    ///
    /// Each read copies the value once, from the header into the buffer (the header of a consumed message holds its
    /// own copy, made when `message.headers` was read).
    public var valueBuffer: ByteBuffer? { valueBuffer(allocator: ByteBufferAllocator()) }

    /// The value in a new `ByteBuffer` from `allocator`, or `nil` for a header without a value. The value is copied
    /// once, from the header into the buffer.
    /// - Parameter allocator: The allocator of the buffer.
    /// - Returns: The value's bytes, or `nil`.
    public func valueBuffer(allocator: ByteBufferAllocator) -> ByteBuffer? {
        valueBytes.map { bytes in bytes.withUnsafeBytes { allocator.buffer(bytes: $0) } }
    }
}
