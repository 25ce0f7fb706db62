import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// A serializer's own buffer type, conforming by lending its bytes.
private struct Frame: KafkaContiguousBytes {
    let storage: [UInt8]
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }
}

@Suite("Records of any contiguous bytes")
struct ContiguousBytesTests {
    @Test("Data, String, Substring, slices and a custom type arrive byte for byte; an empty Data is an empty value, not a tombstone", arguments: TestBackend.allCases)
    func everyKindArrives(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("bytes", partitions: 1)
        let text = "grüße, \u{1F600}"
        let bytes: [UInt8] = [0, 1, 2, 0xFF, 0xFE]
        let records = [
            KafkaProducerRecord(topic: topic, key: Data([9, 8]), value: Data(bytes)),
            KafkaProducerRecord(topic: topic, key: Substring("k-sub"), value: text.dropFirst(2)),
            KafkaProducerRecord(topic: topic, key: bytes[1...], value: ContiguousArray(bytes)),
            KafkaProducerRecord(topic: topic, value: Frame(storage: bytes)),
            KafkaProducerRecord(topic: topic, key: "text", value: Data()),
            KafkaProducerRecord(topic: topic, key: Data("dead".utf8), value: Data?.none),
        ]
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            for record in records { _ = try await producer.send(record) }
        }
        let messages = try await handle(try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic])), count: records.count)
        #expect(messages.map(\.key) == [[9, 8], Array("k-sub".utf8), [1, 2, 0xFF, 0xFE], nil, Array("text".utf8), Array("dead".utf8)])
        #expect(messages.map(\.value) == [bytes, Array(text.dropFirst(2).utf8), bytes, bytes, [], nil])
        #expect(messages[4].isTombstone == false)
        #expect(messages[5].isTombstone)
    }

    @Test("A record keeps the bytes it was given without copying them, and reads them as an array or text")
    func keptWithoutCopy() throws {
        let array = [UInt8](repeating: 7, count: 1000)
        let data = Data(repeating: 3, count: 1000)
        let fromArray = KafkaProducerRecord(topic: "t", key: "key", value: array)
        let fromData = KafkaProducerRecord(topic: "t", value: data)
        let arrayAddress = array.withUnsafeBytes { $0.baseAddress }
        let dataAddress = data.withUnsafeBytes { $0.baseAddress }
        #expect(fromArray.valueBytes?.withUnsafeBytes { $0.baseAddress } == arrayAddress)
        #expect(fromData.valueBytes?.withUnsafeBytes { $0.baseAddress } == dataAddress)
        #expect(fromArray.value == array)
        #expect(fromData.value == [UInt8](repeating: 3, count: 1000))
        #expect(fromArray.keyBytes?.string == "key")
        #expect(fromArray.key == Array("key".utf8))
        #expect(fromData.valueBytes?.count == 1000)
        #expect(KafkaBytes([0xFF]).string == nil)
    }

    @Test("Equal bytes are equal records and hash alike, whatever they were made from; setting key or value replaces the bytes")
    func equalityIsByBytes() {
        let fromString = KafkaProducerRecord(topic: "t", key: "k", value: "hello")
        let fromArray = KafkaProducerRecord(topic: "t", key: Array("k".utf8), value: Array("hello".utf8))
        let fromData = KafkaProducerRecord(topic: "t", key: Data("k".utf8), value: Data("hello".utf8))
        #expect(fromString == fromArray)
        #expect(fromArray == fromData)
        #expect(Set([fromString, fromArray, fromData]).count == 1)
        #expect(KafkaBytes("hello") != KafkaBytes("hellO"))
        // Where a key ends and a value begins counts: these differ, and so do their hashes.
        let split1 = KafkaProducerRecord(topic: "t", key: [0x61], value: [0x01, 0x62])
        let split2 = KafkaProducerRecord(topic: "t", key: [0x61, 0x01], value: [0x62])
        #expect(split1 != split2)
        #expect(split1.hashValue != split2.hashValue)
        var changed = fromString
        changed.value = [1, 2]
        #expect(changed.valueBytes == KafkaBytes([1, 2]))
        changed.key = nil
        #expect(changed.keyBytes == nil)
        #expect(changed != fromString)
    }

    @Test("An empty String value and an empty String header value arrive empty, not null; a multibyte String is measured in UTF-8 bytes", arguments: TestBackend.allCases)
    func emptyAndMultibyteStrings(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("bytes-text", partitions: 1)
        let text = String(repeating: "ü", count: 10)  // 20 bytes of UTF-8
        var configuration = producerConfiguration(backend)
        configuration.maxMessageBytes = 25
        try await withRunning(try KafkaProducer(configuration: configuration)) { producer in
            _ = try await producer.send(KafkaProducerRecord(topic: topic, key: "", value: "", headers: [KafkaHeader(key: "h", value: "")]))
            _ = try await producer.send(KafkaProducerRecord(topic: topic, value: text))
            // 22 characters but 44 bytes: over the 25-byte limit, refused by its bytes, not its characters.
            let refused = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: String(repeating: "ü", count: 22)))
            }
            #expect(refused?.code == .invalidRecord)
        }
        let messages = try await handle(try KafkaConsumer(configuration: consumerConfiguration(backend, group: uniqueName("g"), topics: [topic])), count: 2)
        #expect(messages[0].key == [])
        #expect(messages[0].value == [])
        #expect(messages[0].headers.first?.value == [])
        #expect(messages[1].value == Array(text.utf8))
        #expect(messages[1].value?.count == 20)
    }

    @Test("A key, value or header value made from an array is changed in place, in the record's own buffer; one made from text is copied once, then changed in place")
    func changedInPlace() {
        /// An array with room to grow, made inside the call so that only the record it goes to holds its buffer.
        func roomy(_ bytes: [UInt8]) -> [UInt8] {
            var array = [UInt8]()
            array.reserveCapacity(16)
            array += bytes
            return array
        }
        func address(_ bytes: KafkaBytes?) -> UnsafeRawPointer? { bytes?.withUnsafeBytes { $0.baseAddress } }

        var record = KafkaProducerRecord(
            topic: "t", key: roomy(Array("ab".utf8)), value: roomy([1, 2, 3]),
            headers: [KafkaHeader(key: "h", value: roomy(Array("xy".utf8)))]
        )
        let key = address(record.keyBytes), value = address(record.valueBytes), header = address(record.headers[0].valueBytes)
        record.value![0] = 9
        record.value?.append(4)
        record.key?.append(0x63)
        record.headers[0].value?[1] = 0x7A
        #expect(record.value == [9, 2, 3, 4])
        #expect(record.keyBytes?.string == "abc")
        #expect(record.headers[0].stringValue == "xz")
        #expect(address(record.valueBytes) == value, "the value was copied to be changed")
        #expect(address(record.keyBytes) == key, "the key was copied to be changed")
        #expect(address(record.headers[0].valueBytes) == header, "the header's value was copied to be changed")

        // A copy of the record shares the buffers: changing one leaves the other as it was.
        let copy = record
        record.value![0] = 1
        #expect(copy.value == [9, 2, 3, 4] && record.value == [1, 2, 3, 4])

        // Text has no array to change: the first change copies it into one, later changes happen in that array.
        var text = KafkaProducerRecord(topic: "t", key: "ab", value: "xyz", headers: [KafkaHeader(key: "h", value: "xy")])
        text.value![0] = 0x58
        text.key?.append(0x63)
        text.headers[0].value?[0] = 0x58
        #expect(text.valueBytes?.string == "Xyz" && text.keyBytes?.string == "abc" && text.headers[0].stringValue == "Xy")
        let copied = address(text.valueBytes)
        text.value![1] = 0x59
        #expect(text.valueBytes?.string == "XYz")
        #expect(address(text.valueBytes) == copied, "changed again in the array it was copied into")

        record.value = nil
        #expect(record.isTombstone)
    }

    @Test("Bytes of a caller's own type are copied when the file queue takes the record, so a later change is not written")
    func ownTypeCopiedByFileQueue() async throws {
        final class Buffer: KafkaContiguousBytes, @unchecked Sendable {
            var bytes: [UInt8]
            init(_ bytes: [UInt8]) { self.bytes = bytes }
            func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try bytes.withUnsafeBytes(body) }
        }
        let topic = try await TestBackend.fileQueue.newTopic("bytes-own", partitions: 1)
        let buffer = Buffer([1, 2, 3])
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(.fileQueue))) { producer in
            _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, value: buffer))
            buffer.bytes = [7, 7, 7, 7, 7, 7, 7, 7]  // a misbehaving caller reuses its buffer before the write
            try await producer.flush(timeout: .seconds(10))
        }
        let messages = try await handle(try KafkaConsumer(configuration: consumerConfiguration(.fileQueue, group: uniqueName("g"), topics: [topic])), count: 1)
        #expect(messages[0].value == [1, 2, 3])
    }

    @Test("A description shows the text of UTF-8 bytes and always the count")
    func descriptions() {
        #expect(KafkaBytes([0xFF]).description == "1 byte")
        #expect(KafkaBytes("hi").description == "\"hi\" (2 bytes)")
        #expect(KafkaBytes([0xFF, 0xFE]).description == "2 bytes")
    }

    @Test("A key made from a String, Data or an array lands on the same partition on the file queue")
    func keyPartitionIndependentOfKind() async throws {
        let topic = try await TestBackend.fileQueue.newTopic("bytes-key", partitions: 8)
        let keys = (0..<20).map { "customer-\($0)" }
        let reports = try await withRunning(try KafkaProducer(configuration: producerConfiguration(.fileQueue))) { producer in
            var partitions: [[Int]] = []
            for key in keys {
                partitions.append([
                    try await producer.send(KafkaProducerRecord(topic: topic, key: key, value: "v")).partition,
                    try await producer.send(KafkaProducerRecord(topic: topic, key: Data(key.utf8), value: Data("v".utf8))).partition,
                    try await producer.send(KafkaProducerRecord(topic: topic, key: Array(key.utf8), value: Array("v".utf8))).partition,
                ])
            }
            return partitions
        }
        for (key, partitions) in zip(keys, reports) {
            #expect(Set(partitions).count == 1, "\(key): \(partitions)")
        }
        #expect(Set(reports.map(\.[0])).count > 1)
    }
}
