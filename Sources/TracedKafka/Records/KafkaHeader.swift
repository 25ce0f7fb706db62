/// One Kafka record header: a key and an optional value.
///
/// Kafka allows a header without a value (`nil`), which is different from an empty value. Keys are text in every
/// Kafka client, but the protocol carries bytes: a key that is not valid UTF-8 (another client may write one) is
/// kept byte for byte in ``keyBytes``, so a record read and sent on keeps it exactly; ``key`` shows it with each
/// invalid byte as U+FFFD.
public struct KafkaHeader: Sendable, Hashable {
    /// The key as text, or as bytes only when they are not valid UTF-8 — so one key has one representation and
    /// equality compares keys exactly.
    private enum StoredKey: Sendable, Hashable {
        case text(String)
        case bytes([UInt8])
    }

    private var storedKey: StoredKey

    /// The header's key. For a key that is not valid UTF-8, its text with each invalid byte replaced by U+FFFD
    /// (``keyBytes`` has the exact bytes). Setting it replaces the key.
    public var key: String {
        get {
            switch storedKey {
            case .text(let text): return text
            case .bytes(let bytes): return String(decoding: bytes, as: UTF8.self)
            }
        }
        set { storedKey = .text(newValue) }
    }

    /// The header's key, byte for byte as it was produced (its UTF-8 for a key given as text).
    public var keyBytes: [UInt8] {
        get {
            switch storedKey {
            case .text(let text): return Array(text.utf8)
            case .bytes(let bytes): return bytes
            }
        }
        set { storedKey = Self.key(from: newValue) }
    }

    /// Whether the key is valid UTF-8, so that ``key`` is exactly its bytes.
    public var keyIsUTF8: Bool {
        if case .text = storedKey { return true }
        return false
    }

    /// The value as it was given (a `String` or array kept without a copy), or `nil` for a header without a value.
    public var valueBytes: KafkaBytes?

    /// The value's bytes as an array, or `nil` for a header without a value. Reading it copies a value that was
    /// given as text; setting it sets ``valueBytes``.
    public var value: [UInt8]? {
        get { valueBytes?.array }
        set { valueBytes.arrayView = newValue }
        _modify { yield &valueBytes.arrayView }
    }

    /// Creates a header from bytes.
    /// - Parameters:
    ///   - key: The header's key.
    ///   - value: The header's value, or `nil` for a header without a value.
    public init(key: String, value: [UInt8]?) {
        self.storedKey = .text(key)
        self.valueBytes = value.map(KafkaBytes.init)
    }

    /// Creates a header whose value is the UTF-8 bytes of a string (kept as the string, not copied).
    /// - Parameters:
    ///   - key: The header's key.
    ///   - value: The header's value as text, or `nil` for a header without a value.
    ///
    /// Disfavoured, so that `KafkaHeader(key:value: nil)` means a header without a value instead of being ambiguous.
    @_disfavoredOverload
    public init(key: String, value: String?) {
        self.storedKey = .text(key)
        self.valueBytes = value.map(KafkaBytes.init)
    }

    /// Creates a header whose key is given as bytes, which need not be valid UTF-8.
    /// - Parameters:
    ///   - keyBytes: The header's key, byte for byte.
    ///   - value: The header's value, or `nil` for a header without a value.
    public init(keyBytes: [UInt8], value: [UInt8]?) {
        self.storedKey = Self.key(from: keyBytes)
        self.valueBytes = value.map(KafkaBytes.init)
    }

    /// The value decoded as UTF-8, or `nil` when there is no value or it is not valid UTF-8.
    public var stringValue: String? {
        valueBytes?.string
    }

    /// Whether the key is exactly `key` (a key that is not UTF-8 matches no text).
    func hasKey(_ key: String) -> Bool {
        if case .text(let text) = storedKey { return text == key }
        return false
    }

    /// Calls `body` with the key's bytes, without copying them.
    func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storedKey {
        case .text(var text):
            return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        case .bytes(let bytes):
            return try bytes.withUnsafeBytes(body)
        }
    }

    /// The key's length in bytes.
    var keyByteCount: Int {
        switch storedKey {
        case .text(let text): return text.utf8.count
        case .bytes(let bytes): return bytes.count
        }
    }

    private static func key(from bytes: [UInt8]) -> StoredKey {
        bytes.withUnsafeBytes { String(utf8Bytes: $0) }.map(StoredKey.text) ?? .bytes(bytes)
    }
}

/// The headers of a Kafka record: an ordered list in which a key may repeat.
///
/// Order and repeats are kept exactly as they were produced.
public struct KafkaHeaders: Sendable, Hashable, RandomAccessCollection, MutableCollection, RangeReplaceableCollection,
    ExpressibleByArrayLiteral
{
    private var storage: [KafkaHeader]

    /// Creates an empty list of headers.
    public init() { storage = [] }

    /// Creates headers from a list, in its order.
    /// - Parameter headers: The headers, repeats allowed.
    public init(_ headers: [KafkaHeader]) { storage = headers }

    /// Creates headers from a literal list, in its order.
    /// - Parameter elements: The headers, repeats allowed.
    public init(arrayLiteral elements: KafkaHeader...) { storage = elements }

    /// The position of the first header.
    public var startIndex: Int { storage.startIndex }
    /// The position after the last header.
    public var endIndex: Int { storage.endIndex }

    /// The header at a position. Changed in place (`headers[0].value?[1] = …`), the header is not copied out of
    /// the list, so its value's array is changed in its own buffer.
    public subscript(position: Int) -> KafkaHeader {
        get { storage[position] }
        set { storage[position] = newValue }
        _modify { yield &storage[position] }
    }

    /// Replaces a range of headers with others.
    /// - Parameters:
    ///   - subrange: The headers to replace.
    ///   - newElements: The headers to put in their place.
    public mutating func replaceSubrange<C: Collection>(_ subrange: Range<Int>, with newElements: C)
    where C.Element == KafkaHeader {
        storage.replaceSubrange(subrange, with: newElements)
    }

    /// Appends a header (the array's own append, not the generic range replacement).
    /// - Parameter header: The header to add at the end.
    public mutating func append(_ header: KafkaHeader) { storage.append(header) }

    /// Removes every header `shouldBeRemoved` picks, keeping the order of the rest.
    /// - Parameter shouldBeRemoved: Whether a header goes.
    public mutating func removeAll(where shouldBeRemoved: (KafkaHeader) throws -> Bool) rethrows {
        try storage.removeAll(where: shouldBeRemoved)
    }

    /// Makes room for `minimumCapacity` headers.
    /// - Parameter minimumCapacity: How many headers the list will hold.
    public mutating func reserveCapacity(_ minimumCapacity: Int) { storage.reserveCapacity(minimumCapacity) }

    /// Calls `body` with each header in turn, borrowed from the list rather than copied out of it.
    func forEachBorrowed(_ body: (borrowing KafkaHeader) -> Void) {
        storage.withUnsafeBufferPointer { headers in
            for index in headers.indices { body(headers[index]) }
        }
    }

    /// `read` applied to the bytes of the last value of `key`, read in place (a value given as text is not copied);
    /// `nil` when there is no such header or its last one has no value.
    func withLastValueBytes<Result>(forKey key: String, _ read: (UnsafeRawBufferPointer) -> Result?) -> Result? {
        storage.last(where: { $0.hasKey(key) })?.valueBytes.flatMap { $0.withUnsafeBytes(read) }
    }

    /// Appends a header whose value is a string's UTF-8 bytes.
    /// - Parameters:
    ///   - key: The header's key.
    ///   - value: The value as text, or `nil` for a header without a value.
    public mutating func append(key: String, value: String?) {
        storage.append(KafkaHeader(key: key, value: value))
    }

    /// The value of the **last** header with this key (Kafka's convention when a key repeats), or `nil`.
    /// - Parameter key: The key to look up.
    public func lastValue(forKey key: String) -> [UInt8]? {
        storage.last(where: { $0.hasKey(key) })?.value
    }

    /// Every value stored under a key, in order.
    /// - Parameter key: The key to look up.
    public func values(forKey key: String) -> [[UInt8]?] {
        storage.filter { $0.hasKey(key) }.map(\.value)
    }
}
