import Foundation
import Testing
@testable import TracedKafka
import TracedKafkaTesting

/// A fresh file-queue directory of its own for one test.
func freshQueueDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("tracedkafka-queue")).path
    try? FileManager.default.removeItem(atPath: path)
    return path
}

func fileQueueProducer(_ directory: String, durability: KafkaFileQueueConfiguration.Durability = .none) throws -> KafkaProducer {
    try KafkaProducer(configuration: KafkaProducerConfiguration(
        tracing: .disabled,
        backend: .fileQueue(KafkaFileQueueConfiguration(directory: directory, durability: durability))
    ))
}

func fileQueueConsumer(
    _ directory: String,
    topic: String,
    corruptRecords: KafkaFileQueueConfiguration.CorruptRecordPolicy = .fail,
    events: Bool = false
) throws -> (KafkaConsumer, AsyncStream<KafkaConsumerEvent>) {
    try KafkaConsumer.makeConsumerWithEvents(configuration: KafkaConsumerConfiguration(
        groupID: uniqueName("g"),
        topics: [topic],
        autoOffsetReset: .earliest,
        tracing: .disabled,
        backend: .fileQueue(KafkaFileQueueConfiguration(directory: directory, corruptRecords: corruptRecords))
    ))
}

/// Sends values "v0"… to partition 0 of a one-partition topic and returns the log file's path.
func sendValues(_ count: Int, to topic: String, in directory: String) async throws -> String {
    try KafkaFileQueue.createTopic(topic, partitions: 1, in: directory)
    try await withRunning(try fileQueueProducer(directory)) { producer in
        for index in 0..<count { try await producer.send(KafkaProducerRecord(topic: topic, value: "v\(index)")) }
    }
    return "\(directory)/topics/\(topic)/0.log"
}

@Suite("File queue: durability, crash safety, corruption and bad input")
struct FileQueueTests {
    @Test(
        "An acknowledged send is in the file, whatever the durability setting",
        arguments: [KafkaFileQueueConfiguration.Durability.none, .perRecord, .perBatch, .interval(.milliseconds(20))]
    )
    func acknowledgedIsInTheFile(durability: KafkaFileQueueConfiguration.Durability) async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("durable")
        try await withRunning(try fileQueueProducer(directory, durability: durability)) { producer in
            for index in 0..<20 {
                let report = try await producer.send(KafkaProducerRecord(topic: topic, value: "durable-\(index)-end"))
                #expect(report.offset == Int64(index))
                // Read behind the producer's back: the record's bytes are there the moment it is acknowledged.
                let file = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/topics/\(topic)/0.log"))
                #expect(file.range(of: Data("durable-\(index)-end".utf8)) != nil)
            }
        }
    }

    @Test("A key lands on the same partition number on the file queue as on Kafka (murmur2)")
    func keyPartitioningMatchesKafka() async throws {
        let kafkaTopic = try await TestBackend.librdkafka.newTopic("parity", partitions: 4)
        let queueTopic = try await TestBackend.fileQueue.newTopic("parity", partitions: 4)
        let keys = (0..<24).map { "customer-\($0)" }
        func partitions(_ backend: TestBackend, _ topic: String) async throws -> [Int] {
            try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
                var result: [Int] = []
                for key in keys { result.append(try await producer.send(KafkaProducerRecord(topic: topic, key: key, value: "x")).partition) }
                return result
            }
        }
        let onKafka = try await partitions(.librdkafka, kafkaTopic)
        let onQueue = try await partitions(.fileQueue, queueTopic)
        #expect(onQueue == onKafka)
        #expect(Set(onQueue).count > 1)
    }

    @Test("A torn tail (half a record) is truncated, and the log goes on cleanly after it")
    func tornTailIsRepaired() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("torn")
        let path = try await sendValues(5, to: topic, in: directory)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        // A crash mid-append: the first 20 bytes of a record that was never finished.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: whole.suffix(from: 16).prefix(20))
        try handle.close()

        try await withRunning(try fileQueueProducer(directory)) { producer in
            let report = try await producer.send(KafkaProducerRecord(topic: topic, value: "after"))
            #expect(report.offset == 5)
        }
        let (consumer, _) = try fileQueueConsumer(directory, topic: topic)
        let messages = try await consume(consumer, count: 6)
        #expect(messages.map(\.offset) == Array(0...5))
        #expect(messages.compactMap(\.valueString) == ["v0", "v1", "v2", "v3", "v4", "after"])
    }

    @Test("A reader alone repairs a torn tail it finds, and stops at nothing")
    func readerRepairsTornTail() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("torn-read")
        let path = try await sendValues(3, to: topic, in: directory)
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0x54, 0x4B, 0x46, 0x51, 0x40, 0, 0, 0, 1, 2]))
        try handle.close()
        let (consumer, _) = try fileQueueConsumer(directory, topic: topic)
        let messages = try await consume(consumer, count: 3)
        #expect(messages.compactMap(\.valueString) == ["v0", "v1", "v2"])
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int == sizeBefore)
    }

    /// Flips one byte inside the value "v5" of the log. The value is found with its framing (no key, length 2, the
    /// bytes, no headers: format version 1), since the two bytes alone can also occur in another record's checksum
    /// or timestamp.
    func corruptFifthRecord(_ path: String) throws -> Int {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let framed = Data([0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0] + Array("v5".utf8) + [0, 0, 0, 0])
        let match = try #require(bytes.range(of: framed))
        let value = match.lowerBound + 8
        bytes[value + 1] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        return value
    }

    @Test("A corrupt record in the middle stops the consumer with an error naming the file and byte offset")
    func corruptRecordFails() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("corrupt")
        let path = try await sendValues(10, to: topic, in: directory)
        _ = try corruptFifthRecord(path)
        let (consumer, _) = try fileQueueConsumer(directory, topic: topic)
        let received = Shared<[String]>([])
        let error = await #expect(throws: KafkaError.self) {
            try await withDeadline("corrupt") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await consumer.run() }
                    defer { consumer.triggerGracefulShutdown() }
                    for try await message in consumer.messages { received.withLock { $0.append(message.valueString ?? "") } }
                }
            }
        }
        #expect(error?.code == .corruptRecord)
        #expect(error?.reason.contains(path) == true)
        #expect(error?.reason.contains("byte offset") == true)
        // Everything before the damage was delivered; nothing of it or after it.
        #expect(received.withLock { $0 } == ["v0", "v1", "v2", "v3", "v4"])
    }

    @Test("With the skip policy, a corrupt record is skipped and reported as an event; the rest arrives")
    func corruptRecordSkipped() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("skip")
        let path = try await sendValues(10, to: topic, in: directory)
        _ = try corruptFifthRecord(path)
        let (consumer, events) = try fileQueueConsumer(directory, topic: topic, corruptRecords: .skip)
        let messages = try await consume(consumer, count: 9)
        #expect(messages.compactMap(\.valueString) == ["v0", "v1", "v2", "v3", "v4", "v6", "v7", "v8", "v9"])
        var reported: [KafkaError] = []
        for await event in events { if let error = event.error { reported.append(error) } }
        #expect(reported.count == 1)
        #expect(reported.first?.code == .corruptRecord)
        #expect(reported.first?.reason.contains(path) == true)
    }

    @Test("A damaged last record is corruption, not a torn tail: kept, reported, and its offset never reused")
    func damagedLastRecord() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("last")
        let path = try await sendValues(3, to: topic, in: directory)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 0xFF  // inside the last record's body: a whole frame with a wrong checksum
        try bytes.write(to: URL(fileURLWithPath: path))
        let damagedSize = bytes.count

        let report = try await withRunning(try fileQueueProducer(directory)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "after"))
        }
        #expect(report.offset == 3, "offset 2 belongs to the damaged record: it is not reused")
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int > damagedSize)

        let (strict, _) = try fileQueueConsumer(directory, topic: topic)
        let (received, error) = await valuesUntilFailure(strict, limit: .seconds(10))
        #expect(error?.code == .corruptRecord)
        #expect(received == ["v0", "v1"])

        let (lenient, events) = try fileQueueConsumer(directory, topic: topic, corruptRecords: .skip)
        let messages = try await consume(lenient, count: 3)
        #expect(messages.compactMap(\.valueString) == ["v0", "v1", "after"])
        var reported = 0
        for await event in events { if let error = event.error, error.code == .corruptRecord { reported += 1 } }
        #expect(reported == 1)
    }

    @Test("A topic a producer makes by writing to it gets defaultPartitionCount partitions; one made with createTopic keeps its own count")
    func defaultPartitionCount() async throws {
        let directory = freshQueueDirectory()
        try KafkaFileQueue.createTopic("made-before", partitions: 2, in: directory)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(
            tracing: .disabled,
            backend: .fileQueue(KafkaFileQueueConfiguration(directory: directory, defaultPartitionCount: 5))
        ))
        try await withRunning(producer) { producer in
            #expect(try await producer.send(KafkaProducerRecord(topic: "made-on-use", value: "first")).offset == 0)
            #expect(try await producer.send(KafkaProducerRecord(topic: "made-on-use", value: "last", partition: 4)).partition == 4)
            let beyond = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: "made-on-use", value: "beyond", partition: 5))
            }
            #expect(beyond?.code == .unknownPartition)
            _ = try await producer.send(KafkaProducerRecord(topic: "made-before", value: "v"))
        }
        let admin = try KafkaAdminClient(configuration: KafkaAdminConfiguration(backend: .fileQueue(directory: directory)))
        #expect(try await admin.describeTopic("made-on-use").partitions.map(\.id) == [0, 1, 2, 3, 4])
        #expect(try await admin.describeTopic("made-before").partitions.map(\.id) == [0, 1])
        await admin.close()
    }

    @Test(
        "The producer holds at most maxQueuedRecords records besides the batch being written: with the writer held up, the next send waits for room, and is written once the writer goes on",
        arguments: [1, 3]
    )
    func maxQueuedRecords(limit: Int) async throws {
        try await withStallableProducer(.fileQueue, maxQueued: limit) { stallable in
            let producer = stallable.producer, topic = stallable.topic
            // The writer waits for the log's lock with the first batch it takes.
            try stallable.stall()
            // One record more than the queue holds: by the time they are all taken, the writer has taken a batch of
            // them (1 to `limit` records) and can take no other.
            for index in 0...limit { try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "r\(index)")) }
            // Records are taken until the queue is full again; then a sender waits for room, and stays waiting.
            var accepted = limit + 1
            var waiting: Task<Void, any Error>?
            while accepted <= 2 * limit {
                let returned = Shared(false), index = accepted
                let sender = Task {
                    try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "r\(index)"))
                    returned.withLock { $0 = true }
                }
                while !returned.withLock({ $0 }), producer.core.machine.withLock({ $0.roomWaiterCount }) == 0 { await Task.yield() }
                if returned.withLock({ $0 }) {
                    accepted += 1
                } else {
                    waiting = sender
                    break
                }
            }
            #expect((limit + 1...2 * limit).contains(accepted), "\(accepted) records taken while the writer was held up")
            try stallable.resume()
            let sender = try #require(waiting, "no sender waited for room")
            try await sender.value
            // Every record was written, in order: the warm-up record is offset 0, the ones sent here 1 to accepted + 1.
            #expect(try await producer.send(KafkaProducerRecord(topic: topic, value: "after")).offset == Int64(accepted + 2))
        }
    }

    @Test("A consumer that starts at the latest offset before the partition's log exists gets what is sent after")
    func latestBeforeAnyRecord() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("latest")
        // Partition 0 is the one under test. Partition 1 carries the markers that show the consumer has read partition
        // 0 (`MessageLog.passWholeFetch`): the group's committed offset 0 has it read from its start, however late.
        try KafkaFileQueue.createTopic(topic, partitions: 2, in: directory)
        let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: KafkaConsumerConfiguration(
            groupID: uniqueName("g"), topics: [topic], autoOffsetReset: .latest, tracing: .disabled,
            backend: .fileQueue(directory: directory)
        ))
        try await consumer.commit(offsets: [KafkaTopicPartitionOffset(topic: topic, partition: 1, offset: 0)])
        let values = try await withDeadline("latest") {
            try await withRunning(try fileQueueProducer(directory)) { producer in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await consumer.run() }
                    var assigned: Set<Int> = []
                    for await event in events where event.kind == .partitionsAssigned {
                        assigned.formUnion(event.partitions.map(\.partition))
                        if assigned == [0, 1] { break }
                    }
                    var log = MessageLog(consumer)
                    // Partition 0 has been read, and had no log then.
                    let partition0 = KafkaTopicPartition(topic: topic, partition: 0)
                    try await log.passWholeFetch(producer, topic: topic, markerPartition: 1)
                    let log0 = try FQDirectory(path: directory).logPath(partition0)
                    #expect(!FileManager.default.fileExists(atPath: log0), "partition 0 has a log before anything was sent to it")
                    // Written while partition 0 is paused (and no fetch that began before the pause is still going),
                    // so that the first look at its log finds all three there: a consumer that took "latest" from that
                    // look, not from the one before the log existed, would skip them all.
                    try consumer.pause([partition0])
                    try await log.passWholeFetch(producer, topic: topic, markerPartition: 1)
                    for index in 0..<3 { try await producer.send(KafkaProducerRecord(topic: topic, value: "new\(index)", partition: 0)) }
                    try consumer.resume([partition0])
                    // Partition 0 has been read again since: what was sent to it has come.
                    try await log.passWholeFetch(producer, topic: topic, markerPartition: 1)
                    consumer.triggerGracefulShutdown()
                    try await log.readToEnd()
                    try await group.waitForAll()
                    return log.values(of: 0)
                }
            }
        }
        #expect(values == ["new0", "new1", "new2"])
    }

    @Test("Topic names with path characters are refused, and nothing is written outside the directory",
          arguments: ["../x", "/", "a/b", "..", ".", "a\u{0}b", "../../etc/passwd", ""])
    func pathTraversalIsRefused(topic: String) async throws {
        let parent = freshQueueDirectory()
        let directory = "\(parent)/queue"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let producer = try fileQueueProducer(directory)
        try await withRunning(producer) { producer in
            let error = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: "x"))
            }
            #expect(error?.code == .invalidRecord)
        }
        let consumerError = #expect(throws: KafkaError.self) { _ = try fileQueueConsumer(directory, topic: topic) }
        #expect(consumerError?.code == (topic.isEmpty ? .noTopics : .configuration))
        #expect(throws: KafkaError.self) { try KafkaFileQueue.createTopic(topic, partitions: 1, in: directory) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["queue"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/topics").isEmpty)
    }

    @Test("A group id with path characters stays one directory inside the queue")
    func groupIDIsEncoded() throws {
        let directory = freshQueueDirectory()
        let configuration = KafkaConsumerConfiguration(
            groupID: "../../evil/..", topics: ["t"], backend: .fileQueue(directory: directory)
        )
        _ = try KafkaConsumer(configuration: configuration)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/groups") == ["%2E%2E%2F%2E%2E%2Fevil%2F%2E%2E"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["groups", "topics", "tracedkafka-queue"])
    }

    @Test("An unusable directory is a clear error that names the path")
    func unusableDirectory() throws {
        let parent = freshQueueDirectory()
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let notADirectory = "\(parent)/file"
        #expect(FileManager.default.createFile(atPath: notADirectory, contents: Data("x".utf8)))
        let error = #expect(throws: KafkaError.self) { _ = try fileQueueProducer("\(notADirectory)/queue") }
        #expect(error?.code == .fileQueue)
        #expect(error?.reason.contains(notADirectory) == true)
        #expect(error?.reason.contains("Not a directory") == true)
    }

    @Test("A queue or a log of a newer format version is refused with both versions named")
    func newerFormatIsRefused() async throws {
        let directory = freshQueueDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "TracedKafka file queue\nformat-version: 3\n".write(toFile: "\(directory)/tracedkafka-queue", atomically: true, encoding: .utf8)
        let error = #expect(throws: KafkaError.self) { _ = try fileQueueProducer(directory) }
        #expect(error?.code == .fileQueue)
        #expect(error?.reason.contains("format version 3") == true && error?.reason.contains("versions 1 to 2") == true)

        // A log file of version 2 (logs are still version 1) inside a queue.
        let other = freshQueueDirectory()
        let topic = uniqueName("future")
        let path = try await sendValues(1, to: topic, in: other)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[8] = 2
        try bytes.write(to: URL(fileURLWithPath: path))
        let (consumer, _) = try fileQueueConsumer(other, topic: topic)
        let readError = await #expect(throws: KafkaError.self) { _ = try await consume(consumer, count: 1, limit: .seconds(10)) }
        #expect(readError?.code == .fileQueue)
        #expect(readError?.reason.contains("format version 2") == true)
    }

    @Test("Names Kafka allows never break the layout: a 249-character topic, a long escaped group id and client id commit and resume")
    func longNames() async throws {
        let directory = freshQueueDirectory()
        let topic = String(repeating: "t", count: 249)
        let group = String(repeating: "é/", count: 100)  // 900 bytes percent-encoded
        try KafkaFileQueue.createTopic(topic, partitions: 1, in: directory)
        try await withRunning(try fileQueueProducer(directory)) { producer in
            for index in 0..<10 { try await producer.send(KafkaProducerRecord(topic: topic, value: "v\(index)")) }
        }
        func member() throws -> (KafkaConsumer, AsyncStream<KafkaConsumerEvent>) {
            try KafkaConsumer.makeConsumerWithEvents(configuration: KafkaConsumerConfiguration(
                groupID: group, topics: [topic], autoOffsetReset: .earliest, commitMode: .afterHandled(interval: .milliseconds(50)),
                clientID: String(repeating: "c", count: 300), tracing: .disabled, backend: .fileQueue(directory: directory)
            ))
        }
        let (first, firstEvents) = try member()
        #expect(try await handle(first, count: 5).map(\.offset) == [0, 1, 2, 3, 4])
        #expect(await errorEvents(firstEvents).isEmpty, "the commits went through")
        let (second, _) = try member()
        #expect(try await handle(second, count: 5).map(\.offset) == [5, 6, 7, 8, 9])

        let groups = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/groups")
        #expect(groups.count == 1)
        #expect(try String(contentsOfFile: "\(directory)/groups/\(groups[0])/group-id", encoding: .utf8) == group)
        let all = FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []
        #expect(all.allSatisfy { $0.split(separator: "/").allSatisfy { $0.utf8.count <= 255 } })
    }

    @Test("A queue in the version-1 layout is read and written in it: committed offsets resume, new ones land beside them")
    func versionOneLayout() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("v1")
        _ = try await sendValues(6, to: topic, in: directory)
        try "TracedKafka file queue\nformat-version: 1\n".write(toFile: "\(directory)/tracedkafka-queue", atomically: true, encoding: .utf8)
        let group = "legacy"
        for sub in ["members", "locks", "offsets"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/groups/\(group)/\(sub)", withIntermediateDirectories: true)
        }
        let offsetFile = "\(directory)/groups/\(group)/offsets/\(topic).0"
        try "3\n".write(toFile: offsetFile, atomically: true, encoding: .utf8)
        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
            groupID: group, topics: [topic], autoOffsetReset: .earliest, tracing: .disabled, backend: .fileQueue(directory: directory)
        ))
        #expect(try await consume(consumer, count: 3).map(\.offset) == [3, 4, 5])
        #expect(try String(contentsOfFile: offsetFile, encoding: .utf8) == "6\n")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/groups/\(group)/offsets/\(topic)"))
    }
}
