import NIOCore
import Testing
import TracedKafka
import TracedKafkaNIO
import TracedKafkaTesting

@Suite("SwiftNIO ByteBuffer keys, values and header values")
struct ByteBufferTests {
    /// A buffer whose storage holds `skipped` before `readable`, with `skipped` already read.
    static func partlyRead(skipped: String, readable: String) -> ByteBuffer {
        var buffer = ByteBuffer(string: skipped + readable)
        buffer.moveReaderIndex(forwardBy: skipped.utf8.count)
        return buffer
    }

    @Test("Only a buffer's readable bytes are sent: a partly read buffer and a slice arrive without the bytes around them, and read back as ByteBuffers", arguments: TestBackend.allCases)
    func readableBytesRoundTrip(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("nio-bytes")
        let storage = ByteBuffer(string: "0123456789abcdef")
        let slice = try #require(storage.getSlice(at: 4, length: 6))  // "456789"
        let value = Self.partlyRead(skipped: "already-read|", readable: "payload \u{1F600}")
        let headerValue = Self.partlyRead(skipped: "xx", readable: "header-value")
        var grown = ByteBufferAllocator().buffer(capacity: 1024)  // writerIndex well below the capacity
        grown.writeBytes([0, 1, 0xFF])
        let records = [
            KafkaProducerRecord(
                topic: topic, key: slice, value: value,
                headers: [KafkaHeader(key: "h", value: headerValue), KafkaHeader(key: "slice", value: storage.getSlice(at: 10, length: 3))]
            ),
            KafkaProducerRecord(topic: topic, value: grown),
        ]
        let messages = try await backend.roundTrip(records)

        #expect(messages[0].key == Array("456789".utf8))
        #expect(messages[0].value == Array("payload \u{1F600}".utf8))
        #expect(messages[0].headers.map(\.key) == ["h", "slice"])
        #expect(messages[0].headers.map(\.value) == [Array("header-value".utf8), Array("abc".utf8)])
        #expect(messages[1].key == nil)
        #expect(messages[1].value == [0, 1, 0xFF])
        // Read back as ByteBuffers: the same bytes, each buffer holding exactly them.
        #expect(messages[0].keyBuffer == ByteBuffer(string: "456789"))
        #expect(messages[0].valueBuffer == ByteBuffer(string: "payload \u{1F600}"))
        #expect(messages[0].valueBuffer(allocator: ByteBufferAllocator())?.readerIndex == 0)
        #expect(messages[0].headers.map(\.valueBuffer) == [ByteBuffer(string: "header-value"), ByteBuffer(string: "abc")])
        #expect(messages[1].keyBuffer == nil)
        #expect(messages[1].valueBuffer == ByteBuffer(bytes: [0, 1, 0xFF]))
    }

    @Test("An empty ByteBuffer is an empty key, value or header value; nil is none, and a tombstone's valueBuffer is nil", arguments: TestBackend.allCases)
    func emptyIsNotNil(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("nio-empty")
        let empty = ByteBuffer()
        let drained = Self.partlyRead(skipped: "all-read", readable: "")  // storage behind it, nothing readable
        let records = [
            KafkaProducerRecord(
                topic: topic, key: empty, value: drained,
                headers: [KafkaHeader(key: "empty", value: empty), KafkaHeader(key: "absent", value: nil as ByteBuffer?)]
            ),
            KafkaProducerRecord(topic: topic, key: ByteBuffer(string: "gone"), value: nil as ByteBuffer?),
        ]
        #expect(records[0].isTombstone == false)
        #expect(records[1].isTombstone)
        let messages = try await backend.roundTrip(records)

        #expect(messages[0].key == [])
        #expect(messages[0].value == [])
        #expect(messages[0].isTombstone == false)
        #expect(messages[0].keyBuffer == ByteBuffer())
        #expect(messages[0].valueBuffer == ByteBuffer())
        #expect(messages[0].headers.map(\.key) == ["empty", "absent"])
        #expect(messages[0].headers.map(\.value) == [[], nil])
        #expect(messages[0].headers.map(\.valueBuffer) == [ByteBuffer(), nil])
        #expect(messages[1].isTombstone)
        #expect(messages[1].value == nil)
        #expect(messages[1].valueBuffer == nil)
        #expect(messages[1].keyBuffer == ByteBuffer(string: "gone"))
    }

    @Test("A record keeps a ByteBuffer without copying it: it lends the buffer's readable bytes in place, and equals a record of the same bytes")
    func keptWithoutCopy() {
        let buffer = Self.partlyRead(skipped: "header:", readable: String(repeating: "v", count: 1000))
        let record = KafkaProducerRecord(topic: "t", key: "k", value: buffer)
        let readable = buffer.withUnsafeReadableBytes { $0 }
        let lent = record.valueBytes?.withUnsafeBytes { $0 }
        #expect(lent?.baseAddress == readable.baseAddress)
        #expect(lent?.count == 1000)
        #expect(record == KafkaProducerRecord(topic: "t", key: "k", value: String(repeating: "v", count: 1000)))
        #expect(record.valueBytes?.string == String(repeating: "v", count: 1000))
        // A header keeps its buffer the same way.
        let header = KafkaHeader(key: "h", value: buffer)
        #expect(header.valueBytes?.withUnsafeBytes { $0.baseAddress } == readable.baseAddress)
        // With TracedKafkaNIO imported, a nil header value still means a header without a value.
        #expect(KafkaHeader(key: "h", value: nil).value == nil)
    }

    @Test("A message made in a test reads back as ByteBuffers too: nil stays nil, an empty array is an empty buffer")
    func ownedMessage() {
        let message = KafkaConsumerMessage(
            topic: "t", partition: 0, offset: 7, key: nil, value: [], headers: [KafkaHeader(key: "h", value: [1, 2])],
            timestamp: nil
        )
        #expect(message.keyBuffer == nil)
        #expect(message.valueBuffer == ByteBuffer())
        #expect(message.headers.first?.valueBuffer == ByteBuffer(bytes: [1, 2]))
    }
}
