import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// One way to damage a record of a file-queue log (format version 1; Docs/FileQueueFormat.md): which bytes of the
/// record, counted from the start of its frame, and how.
struct RecordDamage: Sendable, CustomTestStringConvertible {
    var testDescription: String
    var damage: @Sendable (inout Data, _ record: Int) -> Void

    /// Every field of the frame and of the body of a record `sendValues` wrote (no key, a 2-byte value, no header).
    static let everyField: [RecordDamage] = [
        RecordDamage(testDescription: "marker") { bytes, at in bytes[at + 1] ^= 0x01 },
        RecordDamage(testDescription: "length, high byte (runs past the end of the file)") { bytes, at in bytes[at + 6] ^= 0x01 },
        RecordDamage(testDescription: "length, larger but inside the file") { bytes, at in bytes[at + 4] &+= 42 },
        RecordDamage(testDescription: "length, smaller") { bytes, at in bytes[at + 4] &-= 2 },
        RecordDamage(testDescription: "length, beyond the largest record") { bytes, at in bytes[at + 7] = 0xF0 },
        RecordDamage(testDescription: "checksum") { bytes, at in bytes[at + 9] ^= 0x10 },
        RecordDamage(testDescription: "offset") { bytes, at in bytes[at + 12] ^= 0x01 },
        RecordDamage(testDescription: "timestamp") { bytes, at in bytes[at + 20] ^= 0x01 },
        RecordDamage(testDescription: "key length") { bytes, at in bytes[at + 28] ^= 0x01 },
        RecordDamage(testDescription: "value length") { bytes, at in bytes[at + 32] ^= 0x01 },
        RecordDamage(testDescription: "value") { bytes, at in bytes[at + 36] ^= 0x01 },
        RecordDamage(testDescription: "header count") { bytes, at in bytes[at + 38] ^= 0x01 },
    ]
}

/// The byte position of record `index` in a log that `sendValues` wrote: a 16-byte file header, then records of
/// 42 bytes each (12-byte frame, offset, timestamp, nil key, "vN", no headers).
func recordPosition(_ index: Int) -> Int { 16 + 42 * index }

func fileSize(_ path: String) throws -> Int {
    try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
}

/// Collects the consumer's error events until its event stream ends.
func errorEvents(_ events: AsyncStream<KafkaConsumerEvent>) async -> [KafkaError] {
    var errors: [KafkaError] = []
    for await event in events { if let error = event.error { errors.append(error) } }
    return errors
}

/// Consumes until the consumer fails (within `limit`): the values received before, and the error it failed with
/// (`nil`, recorded as an issue, when it did not fail).
func valuesUntilFailure(
    _ consumer: KafkaConsumer,
    limit: Duration = .seconds(20),
    sourceLocation: SourceLocation = #_sourceLocation
) async -> (values: [String], error: KafkaError?) {
    let received = Shared<[String]>([])
    let error = await #expect(throws: KafkaError.self, sourceLocation: sourceLocation) {
        _ = try await consume(consumer, count: .max, limit: limit) { message in
            received.withLock { $0.append(message.valueString ?? "") }
        }
    }
    return (received.withLock { $0 }, error)
}

@Suite("File queue: damage anywhere in a record is corruption, never a torn tail")
struct FileQueueDamageTests {
    @Test(
        "A record damaged in the middle of a log: nothing truncated or reused; fail stops at it, skip reports it",
        arguments: RecordDamage.everyField, [KafkaFileQueueConfiguration.CorruptRecordPolicy.fail, .skip]
    )
    func damagedInTheMiddle(damage: RecordDamage, policy: KafkaFileQueueConfiguration.CorruptRecordPolicy) async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("damage")
        let path = try await sendValues(10, to: topic, in: directory)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.count == recordPosition(10))
        damage.damage(&bytes, recordPosition(5))
        try bytes.write(to: URL(fileURLWithPath: path))

        // A writer after the damage appends after everything and hands out the next offset.
        let report = try await withRunning(try fileQueueProducer(directory)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "vA"))
        }
        #expect(report.offset == 10)
        let after = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(after.count == recordPosition(11))
        #expect(after.prefix(bytes.count) == bytes, "nothing before the new record was changed")

        let (consumer, events) = try fileQueueConsumer(directory, topic: topic, corruptRecords: policy)
        switch policy {
        case .fail:
            let (received, error) = await valuesUntilFailure(consumer)
            #expect(error?.code == .corruptRecord)
            #expect(error?.reason.contains("\(path) at byte offset \(recordPosition(5))") == true)
            #expect(received == ["v0", "v1", "v2", "v3", "v4"])
        case .skip:
            let messages = try await consume(consumer, count: 10)
            #expect(messages.compactMap(\.valueString) == ["v0", "v1", "v2", "v3", "v4", "v6", "v7", "v8", "v9", "vA"])
            #expect(messages.map(\.offset) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10])
            let errors = await errorEvents(events)
            #expect(errors.count == 1)
            #expect(errors.first?.code == .corruptRecord)
            #expect(errors.first?.reason.contains("\(path) at byte offset \(recordPosition(5))") == true)
        default:
            Issue.record("a policy this test does not know")
        }
        #expect(try fileSize(path) == recordPosition(11))
    }

    @Test("The last record with a length that runs past the end is corruption, not a torn tail: kept, offset not reused")
    func lastRecordLengthPastTheEnd() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("last-length")
        let path = try await sendValues(10, to: topic, in: directory)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[recordPosition(9) + 6] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))

        // Readers first: neither a consumer nor a writer may take it for a torn tail and cut it.
        let (strict, _) = try fileQueueConsumer(directory, topic: topic)
        let (received, error) = await valuesUntilFailure(strict)
        #expect(error?.code == .corruptRecord)
        #expect(error?.reason.contains("at byte offset \(recordPosition(9))") == true)
        #expect(received.count == 9)
        #expect(try fileSize(path) == recordPosition(10))

        let report = try await withRunning(try fileQueueProducer(directory)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "vA"))
        }
        #expect(report.offset == 10, "offset 9 belongs to the damaged record")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(bytes.count) == bytes)

        let (lenient, events) = try fileQueueConsumer(directory, topic: topic, corruptRecords: .skip)
        let messages = try await consume(lenient, count: 10)
        #expect(messages.map(\.offset) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10])
        #expect(await errorEvents(events).count == 1)
    }

    @Test("A length bit flipped in record 200 of 400: a group that read them all still gets what is sent next")
    func committedGroupAfterDamage() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("billing")
        try KafkaFileQueue.createTopic(topic, partitions: 1, in: directory)
        try await withRunning(try fileQueueProducer(directory)) { producer in
            for index in 0..<400 { try await producer.send(KafkaProducerRecord(topic: topic, value: "m\(index)")) }
        }
        let group = uniqueName("billing")
        func billing(_ policy: KafkaFileQueueConfiguration.CorruptRecordPolicy) throws -> KafkaConsumer {
            try KafkaConsumer(configuration: KafkaConsumerConfiguration(
                groupID: group, topics: [topic], autoOffsetReset: .earliest, commitMode: .afterHandled(interval: .milliseconds(50)),
                tracing: .disabled,
                backend: .fileQueue(KafkaFileQueueConfiguration(directory: directory, corruptRecords: policy))
            ))
        }
        #expect(try await consume(try billing(.fail), count: 400).count == 400)

        // Record 200's length field: its frame starts after the header and 200 records of 12 + 28 + 4 bytes
        // ("m0"…"m9" are 2 bytes, "m10"… 3): find it by its offset field instead of counting.
        let path = "\(directory)/topics/\(topic)/0.log"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let offsetField = Data(withUnsafeBytes(of: Int64(200).littleEndian) { Array($0) })
        let record = try #require(bytes.range(of: offsetField, options: [], in: 16..<bytes.count)).lowerBound - 12
        #expect(bytes[record..<(record + 4)] == Data("TKFQ".utf8))
        bytes[record + 6] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))

        let reports = try await withRunning(try fileQueueProducer(directory)) { producer in
            var offsets: [Int64] = []
            for index in 0..<100 { offsets.append(try await producer.send(KafkaProducerRecord(topic: topic, value: "n\(index)")).offset) }
            return offsets
        }
        #expect(reports == Array(400..<500))
        #expect(try fileSize(path) > bytes.count)
        let next = try await consume(try billing(.fail), count: 100)
        #expect(next.compactMap(\.valueString) == (0..<100).map { "n\($0)" })
    }
}
