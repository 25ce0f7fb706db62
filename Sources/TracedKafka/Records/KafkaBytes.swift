import struct Foundation.Data

/// Bytes a record's key or value can be made of, handed to Kafka without an intermediate copy.
///
/// `[UInt8]`, `ArraySlice<UInt8>`, `ContiguousArray<UInt8>`, `String`, `Substring` and Foundation's `Data` conform,
/// and SwiftNIO's `ByteBuffer` with the `TracedKafkaNIO` library.
/// Conform your own type (a buffer from your serializer, for example) by lending its bytes:
///
/// ```swift
/// import TracedKafka
///
/// struct Frame: KafkaContiguousBytes {
///     let storage: [UInt8]
///     func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
///         try storage.withUnsafeBytes(body)
///     }
/// }
/// ```
///
/// The producer reads the bytes in place, possibly more than once (their size when the record is admitted, the key
/// for a partition, attributes for a span) and, on the file queue, again on its writer thread after `enqueue` has
/// returned. So a conforming value must lend the same bytes every time, from any thread, until the record's outcome
/// is known: an immutable value, as `Sendable` suggests. (librdkafka copies the bytes when the record is enqueued; the
/// file queue copies a value of your own type when it takes the record.) The pointer must not escape `body`.
public protocol KafkaContiguousBytes: Sendable {
    /// Calls `body` with the bytes, contiguous in memory and valid only while `body` runs.
    /// - Parameter body: A closure that reads the bytes.
    /// - Returns: What `body` returns.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: KafkaContiguousBytes where Element == UInt8 {}
extension ArraySlice: KafkaContiguousBytes where Element == UInt8 {}
extension ContiguousArray: KafkaContiguousBytes where Element == UInt8 {}
extension Data: KafkaContiguousBytes {}

extension String: KafkaContiguousBytes {
    /// Calls `body` with the string's UTF-8 bytes (a native string lends its own storage; a bridged one is made
    /// contiguous first).
    /// - Parameter body: A closure that reads the bytes.
    /// - Returns: What `body` returns.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var text = self
        return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: KafkaContiguousBytes {
    /// Calls `body` with the substring's UTF-8 bytes.
    /// - Parameter body: A closure that reads the bytes.
    /// - Returns: What `body` returns.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var text = self
        return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

/// A record's key or value: the bytes it was made from, kept as they were given.
///
/// A record made from a `String`, `Data` or any ``KafkaContiguousBytes`` keeps that value; its bytes are read in
/// place when the record is enqueued. Two `KafkaBytes` are equal when their bytes are, whatever they were made from.
public struct KafkaBytes: KafkaContiguousBytes, Hashable, CustomStringConvertible {
    @usableFromInline
    enum Storage: Sendable {
        case array([UInt8])
        case string(String)
        case data(Data)
        /// Boxed, so that the storage stays two words and copies without the runtime's help.
        case other(Other)
    }

    /// Bytes of a type other than the three kept inline.
    @usableFromInline
    final class Other: Sendable {
        @usableFromInline
        let bytes: any KafkaContiguousBytes
        @usableFromInline
        init(_ bytes: any KafkaContiguousBytes) { self.bytes = bytes }
    }

    @usableFromInline
    let storage: Storage

    /// Keeps `bytes` as they are (no copy for `[UInt8]`, `String`, `Data` and `KafkaBytes`). Inlinable, so that
    /// the kind of bytes is known where the record is made rather than found by a dynamic cast.
    /// - Parameter bytes: The bytes.
    @inlinable
    public init(_ bytes: some KafkaContiguousBytes) {
        switch bytes {
        case let bytes as KafkaBytes: self = bytes
        case let array as [UInt8]: self.init(array)
        case let text as String: self.init(text)
        case let data as Data: self.init(data)
        default: self.init(storage: .other(Other(bytes)))
        }
    }

    @usableFromInline
    init(storage: Storage) { self.storage = storage }

    /// Keeps an array (no copy).
    /// - Parameter array: The bytes.
    public init(_ array: [UInt8]) { storage = .array(array) }

    /// Keeps a string, whose UTF-8 bytes are the value (no copy).
    /// - Parameter text: The string.
    public init(_ text: String) { storage = .string(text) }

    /// Keeps Foundation `Data` (no copy).
    /// - Parameter data: The bytes.
    public init(_ data: Data) { storage = .data(data) }

    /// Calls `body` with the bytes, valid only while `body` runs.
    /// - Parameter body: A closure that reads the bytes.
    /// - Returns: What `body` returns.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .array(let array): return try array.withUnsafeBytes(body)
        case .string(let text): return try text.withUnsafeBytes(body)
        case .data(let data): return try data.withUnsafeBytes(body)
        case .other(let other): return try other.bytes.withUnsafeBytes(body)
        }
    }

    /// The number of bytes.
    public var count: Int {
        switch storage {
        case .array(let array): return array.count
        case .string(let text): return text.utf8.count
        case .data(let data): return data.count
        case .other(let other): return other.bytes.withUnsafeBytes { $0.count }
        }
    }

    /// The bytes as an array: the array itself if the value was made from one, else a copy.
    public var array: [UInt8] {
        if case .array(let array) = storage { return array }
        return withUnsafeBytes { Array($0) }
    }

    /// The same bytes, held by a value that no one else can change: itself unless it was made from a type of your
    /// own, which is copied into an array (for a record the file queue writes after `enqueue` has returned).
    var owned: KafkaBytes { isOwned ? self : KafkaBytes(array) }

    /// Whether the bytes are held by an array, a string or `Data` (not by a type of the caller's own).
    var isOwned: Bool {
        if case .other = storage { return false }
        return true
    }

    /// The bytes as text, if they are valid UTF-8 (the string itself if the value was made from one).
    public var string: String? {
        if case .string(let text) = storage { return text }
        return withUnsafeBytes { String(utf8Bytes: $0) }
    }

    /// A short description: the byte count, and before it the text when the bytes are valid UTF-8.
    public var description: String {
        let size = count == 1 ? "1 byte" : "\(count) bytes"
        guard let text = string else { return size }
        return "\(String(reflecting: text)) (\(size))"
    }

    /// Whether two values hold the same bytes.
    public static func == (lhs: KafkaBytes, rhs: KafkaBytes) -> Bool {
        lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in left.elementsEqual(right) } }
    }

    /// Hashes the bytes.
    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes {
            hasher.combine($0.count)  // so that where a key ends and a value begins counts in a record's hash
            hasher.combine(bytes: $0)
        }
    }
}

extension Optional where Wrapped == KafkaBytes {
    /// Optional bytes seen as an optional array: the view behind a record's `key` and `value` and a header's
    /// `value`. Changed in place, an array is moved out and back (no copy) and other bytes are copied once.
    var arrayView: [UInt8]? {
        get { self?.array }
        set { self = newValue.map(KafkaBytes.init) }
        _modify {
            var array = self?.array
            self = nil  // the array is now the only reference to its buffer
            defer { self = array.map(KafkaBytes.init) }
            yield &array
        }
    }
}

extension String {
    /// The bytes as text when they are valid UTF-8: ASCII, checked byte by byte, needs no general validation (the
    /// standard library's own goes through unspecialized generic code on this path).
    init?(utf8Bytes bytes: UnsafeRawBufferPointer) {
        if !bytes.contains(where: { $0 >= 0x80 }) {
            self.init(decoding: bytes, as: UTF8.self)
            return
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        self = text
    }
}
