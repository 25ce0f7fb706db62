/// One Kafka record header: a key and an optional value.
///
/// Kafka allows a header without a value (`nil`), which is different from an empty value.
public struct KafkaHeader: Sendable, Hashable {
    /// The header's key.
    public var key: String
    /// The header's value, or `nil` for a header without a value.
    public var value: [UInt8]?

    /// Creates a header from bytes.
    /// - Parameters:
    ///   - key: The header's key.
    ///   - value: The header's value, or `nil` for a header without a value.
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }

    /// Creates a header whose value is the UTF-8 bytes of a string.
    /// - Parameters:
    ///   - key: The header's key.
    ///   - value: The header's value as text, or `nil` for a header without a value.
    public init(key: String, value: String?) {
        self.init(key: key, value: value.map { Array($0.utf8) })
    }

    /// The value decoded as UTF-8, or `nil` when there is no value or it is not valid UTF-8.
    public var stringValue: String? {
        value.flatMap { String(validating: $0, as: UTF8.self) }
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

    /// The header at a position.
    public subscript(position: Int) -> KafkaHeader {
        get { storage[position] }
        set { storage[position] = newValue }
    }

    /// Replaces a range of headers with others.
    /// - Parameters:
    ///   - subrange: The headers to replace.
    ///   - newElements: The headers to put in their place.
    public mutating func replaceSubrange<C: Collection>(_ subrange: Range<Int>, with newElements: C)
    where C.Element == KafkaHeader {
        storage.replaceSubrange(subrange, with: newElements)
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
        storage.last(where: { $0.key == key })?.value
    }

    /// Every value stored under a key, in order.
    /// - Parameter key: The key to look up.
    public func values(forKey key: String) -> [[UInt8]?] {
        storage.filter { $0.key == key }.map(\.value)
    }
}
