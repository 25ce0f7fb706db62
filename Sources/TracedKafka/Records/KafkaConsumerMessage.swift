import struct Foundation.Date
import Tracing

/// A record read from Kafka, with its position.
///
/// A message read through librdkafka keeps librdkafka's copy of the record and copies its key, value and headers
/// out of it each time they are read, so a handler that reads less pays for less (read each once and keep the
/// result). Until every copy of the message is gone it keeps the records fetched with it (up to 512, which share
/// librdkafka's fetch memory anyway) and its consumer's librdkafka handle, past shutdown, alive: copy out what you
/// keep for long.
public struct KafkaConsumerMessage: Sendable, Hashable {
    /// The topic it was read from.
    public var topic: String
    /// The partition it was read from.
    public var partition: Int
    /// Its offset in the partition.
    public var offset: Int64
    /// The record's timestamp, when the broker reports one.
    public var timestamp: Date?
    /// What ``timestamp`` means: the producer's create time, or the broker's log-append time for a topic that keeps
    /// that (`message.timestamp.type=LogAppendTime`); `nil` without a timestamp. Always create time on the file queue.
    public var timestampType: KafkaTimestampType?
    /// The producer's trace context extracted from the headers, when tracing and propagation are on and the
    /// headers carry a valid one. Use it to start your own spans when you read ``KafkaConsumer/messages`` directly
    /// (the handler API does it for you). Not part of equality.
    public var traceContext: InstrumentationContext?

    /// Key, value and headers: in Swift arrays, or still in librdkafka's message.
    private var body: Body

    private enum Body: Sendable {
        case owned(key: [UInt8]?, value: [UInt8]?, headers: KafkaHeaders)
        /// Message `index` of a fetched batch.
        case librdkafka(RDMessageBatch, index: Int)
    }

    /// Creates a message; the consumer does this, tests may too.
    /// - Parameters:
    ///   - topic: The topic.
    ///   - partition: The partition.
    ///   - offset: The offset in the partition.
    ///   - key: The key, or `nil`.
    ///   - value: The value, or `nil` for a tombstone.
    ///   - headers: The headers.
    ///   - timestamp: The timestamp, if known.
    ///   - timestampType: What the timestamp means (create time when there is one and this is `nil`).
    public init(
        topic: String,
        partition: Int,
        offset: Int64,
        key: [UInt8]?,
        value: [UInt8]?,
        headers: KafkaHeaders,
        timestamp: Date?,
        timestampType: KafkaTimestampType? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.timestampType = timestamp == nil ? nil : timestampType ?? .createTime
        self.body = .owned(key: key, value: value, headers: headers)
    }

    /// A message still held by librdkafka.
    init(
        topic: String,
        partition: Int,
        offset: Int64,
        timestamp: Date?,
        timestampType: KafkaTimestampType?,
        librdkafka batch: RDMessageBatch,
        index: Int
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.timestampType = timestampType
        self.body = .librdkafka(batch, index: index)
    }

    /// The key, or `nil`.
    public var key: [UInt8]? {
        get {
            switch body {
            case .owned(let key, _, _): return key
            case .librdkafka(let batch, let index): return batch.key(index)
            }
        }
        set {
            let (_, value, headers) = contents
            body = .owned(key: newValue, value: value, headers: headers)
        }
    }

    /// The value, or `nil` for a tombstone.
    public var value: [UInt8]? {
        get {
            switch body {
            case .owned(_, let value, _): return value
            case .librdkafka(let batch, let index): return batch.value(index)
            }
        }
        set {
            let (key, _, headers) = contents
            body = .owned(key: key, value: newValue, headers: headers)
        }
    }

    /// The headers, in the order they were produced.
    public var headers: KafkaHeaders {
        get {
            switch body {
            case .owned(_, _, let headers): return headers
            case .librdkafka(let batch, let index): return batch.headers(index)
            }
        }
        set {
            let (key, value, _) = contents
            body = .owned(key: key, value: value, headers: newValue)
        }
    }

    private var contents: (key: [UInt8]?, value: [UInt8]?, headers: KafkaHeaders) {
        switch body {
        case .owned(let key, let value, let headers): return (key, value, headers)
        case .librdkafka(let batch, let index): return (batch.key(index), batch.value(index), batch.headers(index))
        }
    }

    /// Whether the message has any header, without copying them.
    var hasHeaders: Bool {
        switch body {
        case .owned(_, _, let headers): return !headers.isEmpty
        case .librdkafka(let batch, let index): return batch.hasHeaders(index)
        }
    }

    /// `read` applied to the last value of header `key`, without copying the headers; `nil` when there is no such
    /// header or its last one has no value.
    func withLastHeaderValue<Result>(forKey key: String, _ read: (UnsafeRawBufferPointer) -> Result?) -> Result? {
        switch body {
        case .owned(_, _, let headers): return headers.withLastValueBytes(forKey: key, read)
        case .librdkafka(let batch, let index): return batch.withLastHeaderValue(index, key: key, read)
        }
    }

    /// The size of the value, without copying it.
    var valueCount: Int {
        switch body {
        case .owned(_, let value, _): return value?.count ?? 0
        case .librdkafka(let batch, let index): return batch.valueCount(index)
        }
    }

    /// Calls `read` with the key's bytes where the message holds them (librdkafka's copy of the record, or the
    /// array), without copying them, or with `nil` when there is no key; the pointer is valid only while `read` runs.
    /// For TracedKafkaNIO, which copies them once into a `ByteBuffer`.
    package func withUnsafeKeyBytes<R>(_ read: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try withUnsafeBytes(ofKey: true, read)
    }

    /// Calls `read` with the value's bytes where the message holds them, without copying them, or with `nil` for a
    /// tombstone; the pointer is valid only while `read` runs. For TracedKafkaNIO.
    package func withUnsafeValueBytes<R>(_ read: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try withUnsafeBytes(ofKey: false, read)
    }

    private func withUnsafeBytes<R>(ofKey isKey: Bool, _ read: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        switch body {
        case .owned(let key, let value, _):
            guard let bytes = isKey ? key : value else { return try read(nil) }
            return try bytes.withUnsafeBytes { try read($0) }
        case .librdkafka(let batch, let index):
            return try batch.withBytes(index, key: isKey, read)
        }
    }

    /// The key decoded as UTF-8, or `nil`.
    public var keyString: String? { text(ofKey: true) }
    /// The value decoded as UTF-8, or `nil`.
    public var valueString: String? { text(ofKey: false) }

    /// The key or the value as text, read in place (no copy of librdkafka's bytes first).
    private func text(ofKey isKey: Bool) -> String? {
        switch body {
        case .owned(let key, let value, _): return (isKey ? key : value).flatMap { bytes in bytes.withUnsafeBytes { String(utf8Bytes: $0) } }
        case .librdkafka(let batch, let index): return isKey ? batch.keyString(index) : batch.valueString(index)
        }
    }
    /// Whether this message is a tombstone (its value is `nil`).
    public var isTombstone: Bool {
        switch body {
        case .owned(_, let value, _): return value == nil
        case .librdkafka(let batch, let index): return batch.isTombstone(index)
        }
    }

    /// The position to commit once this message is handled: its offset + 1.
    public var nextOffset: KafkaTopicPartitionOffset {
        KafkaTopicPartitionOffset(topic: topic, partition: partition, offset: offset + 1)
    }

    /// Whether two messages hold the same record at the same position (the extracted trace context is ignored).
    public static func == (lhs: KafkaConsumerMessage, rhs: KafkaConsumerMessage) -> Bool {
        lhs.topic == rhs.topic && lhs.partition == rhs.partition && lhs.offset == rhs.offset && lhs.key == rhs.key
            && lhs.value == rhs.value && lhs.headers == rhs.headers && lhs.timestamp == rhs.timestamp
            && lhs.timestampType == rhs.timestampType
    }

    /// Hashes the record and its position.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(topic)
        hasher.combine(partition)
        hasher.combine(offset)
        hasher.combine(key)
        hasher.combine(value)
        hasher.combine(headers)
        hasher.combine(timestamp)
        hasher.combine(timestampType)
    }
}
