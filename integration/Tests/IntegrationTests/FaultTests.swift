import Foundation
import Synchronization
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// Faults, each on an embedded cluster of its own (librdkafka's mock cluster in this process, still spoken to over
/// TCP on 127.0.0.1): only there can a broker be taken down or a request be made to fail.
///
/// Serialized: librdkafka 2.0.2's mock broker re-binds its port when it is taken down and aborts the process
/// (`rd_assert`, "Failed to-create mock broker listener") if the port was taken meanwhile; fewer connections opened
/// at the same moment make that race rarer. `integration/run` also runs the suites one test at a time.
@Suite("Faults on the embedded broker", .serialized)
struct FaultTests {
    /// Drains a producer's event stream, counting outcomes.
    static func countOutcomes(_ events: AsyncStream<KafkaProducerEvent>) async -> (delivered: Int, failed: [KafkaError]) {
        var delivered = 0
        var failed: [KafkaError] = []
        for await event in events {
            switch event {
            case .delivered: delivered += 1
            case .failed(_, _, let error): failed.append(error)
            case .error: break  // cluster errors: the records' own outcomes follow
            }
        }
        return (delivered, failed)
    }

    /// An embedded cluster of the test's own with the topic `it-<run>-<suffix>`, replicated on every broker.
    /// - Parameters:
    ///   - brokers: How many brokers.
    ///   - suffix: The topic's name within this run.
    ///   - partitions: How many partitions the topic has.
    static func cluster(brokers: Int = 1, topic suffix: String, partitions: Int) throws -> (EmbeddedKafkaCluster, String) {
        let cluster = try EmbeddedKafkaCluster(brokers: brokers)
        let topic = Integration.topicName(suffix)
        try cluster.createTopic(topic, partitions: partitions, replicationFactor: brokers)
        return (cluster, topic)
    }

    @Test("The only broker goes down: both clients report an error event within seconds; it comes back: they recover")
    func clusterDownAndBack() async throws {
        let (cluster, topic) = try Self.cluster(topic: "down", partitions: 1)
        let servers = cluster.bootstrapServerList
        let (consumer, consumerEvents) = try KafkaConsumer.makeConsumerWithEvents(
            configuration: consumerConfiguration(servers, group: Integration.group("down"), topics: [topic]))
        let (producer, producerEvents) = try KafkaProducer.makeProducerWithEvents(configuration: producerConfiguration(servers))
        let consumerErrors = Shared<[KafkaError]>([]), producerErrors = Shared<[KafkaError]>([]), assigned = Shared(false)
        let watchers = [
            Task {
                for await event in consumerEvents {
                    if event.kind == .partitionsAssigned { assigned.withLock { $0 = true } }
                    if let error = event.error { consumerErrors.withLock { $0.append(error) } }
                }
            },
            Task { for await event in producerEvents { if case .error(let error) = event { producerErrors.withLock { $0.append(error) } } } },
        ]
        let received = Shared<[String]>([])
        let reading = Task { try await consumer.run { message in received.withLock { $0.append(message.valueString ?? "") } } }
        try await withRunning(producer) { producer in
            try await withDeadline("assigned", .seconds(60)) { while !assigned.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) } }
            try await producer.send(KafkaProducerRecord(topic: topic, value: "before"))
            try cluster.setBrokerDown(1)
            try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "during"))
            try await withDeadline("error events from both clients", .seconds(10)) {
                while consumerErrors.withLock({ $0.isEmpty }) || producerErrors.withLock({ $0.isEmpty }) {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let codes = (consumerErrors.withLock { $0 } + producerErrors.withLock { $0 }).compactMap(\.rdKafkaCode)
            #expect(codes.allSatisfy { [.transport, .allBrokersDown].contains($0) }, "\(codes)")
            try cluster.setBrokerUp(1)
            // Recovered: the record queued while the broker was down and one sent after it come through.
            try await producer.send(KafkaProducerRecord(topic: topic, value: "after"))
            try await withDeadline("the records after the outage", .seconds(60)) {
                while received.withLock({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(20)) }
            }
        }
        #expect(received.withLock { $0 } == ["before", "during", "after"])
        consumer.triggerGracefulShutdown()
        _ = try? await reading.value
        for watcher in watchers { watcher.cancel() }
        cluster.shutdown()
    }

    @Test("One broker of three goes down mid-stream and comes back: every record is delivered and consumed once")
    func brokerDownMidStream() async throws {
        let (cluster, topic) = try Self.cluster(brokers: 3, topic: "outage", partitions: 6)
        let total = 3_000
        let servers = cluster.bootstrapServerList
        let (consumer, consumerEvents) = try KafkaConsumer.makeConsumerWithEvents(
            configuration: consumerConfiguration(servers, group: Integration.group("outage"), topics: [topic]))
        let assigned = Shared(false)
        let received = try await withDeadline("outage", .seconds(180)) {
            try await withThrowingTaskGroup(of: [String].self) { tasks in
                tasks.addTask { try await consumer.run(); return [] }
                tasks.addTask {
                    for await event in consumerEvents {
                        if event.kind == .partitionsAssigned, !event.partitions.isEmpty { assigned.withLock { $0 = true } }
                    }
                    return []
                }
                tasks.addTask {
                    var values: [String] = []
                    for try await message in consumer.messages {
                        values.append(message.valueString ?? "")
                        if values.count == total { consumer.triggerGracefulShutdown() }
                    }
                    return values
                }
                while !assigned.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(50)) }
                var configuration = producerConfiguration(servers)
                configuration.idempotence = true
                let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration)
                let outcomes = Task { await Self.countOutcomes(events) }
                try await withRunning(producer) { producer in
                    for index in 0..<total {
                        if index == 1_000 { try cluster.setBrokerDown(2) }
                        if index == 2_000 { try cluster.setBrokerUp(2) }
                        _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "k\(index)", value: "v\(index)"))
                        if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
                    }
                    try await producer.flush()
                }
                let (delivered, failed) = await outcomes.value
                #expect(delivered == total)
                #expect(failed.isEmpty, "\(failed.prefix(3))")
                var all: [String] = []
                for try await values in tasks { all += values }
                return all
            }
        }
        #expect(received.count == total)
        #expect(Set(received) == Set((0..<total).map { "v\($0)" }))
        cluster.shutdown()
    }

    @Test("Retriable errors pushed on Produce are retried: with idempotence every record lands once")
    func produceRequestErrors() async throws {
        let (cluster, topic) = try Self.cluster(brokers: 3, topic: "produce-errors", partitions: 2)
        var configuration = producerConfiguration(cluster.bootstrapServerList, properties: ["retry.backoff.ms": "10"])
        configuration.idempotence = true
        let producer = try KafkaProducer(configuration: configuration)
        let offsets = try await withRunning(producer) { producer in
            _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "warm-up", partition: 0))
            try cluster.pushRequestErrors(.produce, [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas, .requestTimedOut])
            var offsets: [Int64] = []
            for index in 0..<50 {
                offsets.append(try await producer.send(KafkaProducerRecord(topic: topic, value: "p\(index)", partition: 0)).offset)
            }
            return offsets
        }
        #expect(offsets == Array(1...50))
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServerList, group: Integration.group("pe"), topics: [topic]))
        let messages = try await consume(consumer, count: 51)
        #expect(messages.map(\.valueString) == ["warm-up"] + (0..<50).map { "p\($0)" })
        cluster.shutdown()
    }

    @Test("Retriable errors pushed on Fetch: the consumer still sees every record once, in order")
    func fetchRequestErrors() async throws {
        let (cluster, topic) = try Self.cluster(topic: "fetch-errors", partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServerList))
        try await withRunning(producer) { producer in
            for index in 0..<100 { _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "f\(index)")) }
            try await producer.flush()
        }
        try cluster.pushRequestErrors(.fetch, [.notLeaderForPartition, .requestTimedOut, .notLeaderForPartition, .unknownServerError])
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServerList, group: Integration.group("fe"), topics: [topic]))
        let messages = try await consume(consumer, count: 100)
        #expect(messages.map(\.valueString) == (0..<100).map { "f\($0)" })
        #expect(messages.map(\.offset) == Array(0..<100))
        cluster.shutdown()
    }

    @Test("Errors pushed on OffsetCommit: a failed commit reaches its caller, and what is committed in the end is where the group resumes")
    func offsetCommitRequestErrors() async throws {
        let (cluster, topic) = try Self.cluster(topic: "commit-errors", partitions: 1)
        let servers = cluster.bootstrapServerList
        let group = Integration.group("ce")
        let producer = try KafkaProducer(configuration: producerConfiguration(servers))
        try await withRunning(producer) { producer in
            for index in 0..<10 { _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "c\(index)")) }
        }
        let first = try KafkaConsumer(configuration: consumerConfiguration(servers, group: group, topics: [topic], commitMode: .manual))
        let outcome = try await withDeadline("commits", .seconds(90)) {
            try await withThrowingTaskGroup(of: (KafkaError?, Bool).self) { tasks in
                tasks.addTask { try await first.run(); return (nil, false) }
                var failure: KafkaError?
                var retried = false
                var seen = 0
                for try await message in first.messages {
                    seen += 1
                    if message.offset == 3 {
                        // A non-retriable answer: the caller must see it.
                        try cluster.pushRequestErrors(.offsetCommit, [.unknownServerError])
                        do { try await first.commit(message) } catch let error as KafkaError { failure = error }
                    }
                    if message.offset == 6 {
                        try await first.commit(message)  // the broker answers normally again
                        retried = true
                    }
                    if seen == 10 { first.triggerGracefulShutdown() }
                }
                try await tasks.waitForAll()
                return (failure, retried)
            }
        }
        let failure = try #require(outcome.0, "a commit answered with UNKNOWN_SERVER_ERROR did not throw")
        #expect(failure.code == .rdKafka)
        #expect(outcome.1)
        let second = try KafkaConsumer(configuration: consumerConfiguration(servers, group: group, topics: [topic], commitMode: .manual))
        let rest = try await consume(second, count: 3)
        #expect(rest.map(\.offset) == [7, 8, 9])
        cluster.shutdown()
    }

    @Test("With idempotence on, 100,000 messages arrive exactly once and in order per partition, through produce errors and a broker outage")
    func idempotentHundredThousand() async throws {
        let (cluster, topic) = try Self.cluster(brokers: 3, topic: "idempotent", partitions: 4)
        let servers = cluster.bootstrapServerList
        let total = 100_000
        var configuration = producerConfiguration(servers, properties: ["retry.backoff.ms": "10"])
        configuration.idempotence = true
        configuration.linger = .milliseconds(5)
        configuration.tracing = .disabled
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration)
        let outcomes = Task { await Self.countOutcomes(events) }
        try await withDeadline("producing 100k", .seconds(240)) {
            try await withRunning(producer) { producer in
                for index in 0..<total {
                    if index == 25_000 { try cluster.pushRequestErrors(.produce, [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas]) }
                    if index == 50_000 { try cluster.setBrokerDown(3) }
                    if index == 60_000 { try cluster.setBrokerUp(3) }
                    if index == 75_000 { try cluster.pushRequestErrors(.produce, [.requestTimedOut, .requestTimedOut]) }
                    _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "key-\(index % 97)", value: "\(index)"))
                    if index == 50_000 || index == 55_000 { try await Task.sleep(for: .milliseconds(500)) }
                }
                try await producer.flush(timeout: .seconds(180))
            }
        }
        let (delivered, failed) = await outcomes.value
        #expect(delivered == total)
        #expect(failed.isEmpty, "\(failed.prefix(3))")

        var consumerConfiguration = consumerConfiguration(servers, group: Integration.group("idem"), topics: [topic])
        consumerConfiguration.tracing = .disabled
        let messages = try await consume(try KafkaConsumer(configuration: consumerConfiguration), count: total, limit: .seconds(240))
        let values = messages.compactMap { $0.valueString.flatMap(Int.init) }
        #expect(values.count == total)
        #expect(Set(values).count == total, "duplicates: \(values.count - Set(values).count)")
        #expect(Set(values) == Set(0..<total))
        for partition in 0..<4 {
            let inPartition = messages.filter { $0.partition == partition }
            let sequence = inPartition.compactMap { $0.valueString.flatMap(Int.init) }
            #expect(zip(sequence, sequence.dropFirst()).allSatisfy { $0 < $1 }, "partition \(partition) is out of send order")
            #expect(inPartition.map(\.offset) == Array(0..<Int64(inPartition.count)), "partition \(partition) has gaps")
        }
        cluster.shutdown()
    }

    /// How the sends after the warm-up fail.
    enum SendFault: String, CaseIterable, CustomTestStringConvertible {
        /// Every ProduceRequest is answered TOPIC_AUTHORIZATION_FAILED, whatever its batch holds.
        case refused
        /// The only broker is down until the sends time out (`message.timeout.ms` 2 s).
        case timedOut

        var testDescription: String { rawValue }

        /// The error every failed send reports, as librdkafka names it.
        var errorName: String { self == .refused ? "TOPIC_AUTHORIZATION_FAILED" : "_MSG_TIMED_OUT" }

        /// The producer's properties.
        var properties: [String: String] { self == .refused ? [:] : ["message.timeout.ms": "2000"] }

        /// Sends five records with `producer` while the fault holds.
        func sendFive(to topic: String, with producer: KafkaProducer, on cluster: EmbeddedKafkaCluster) async throws -> [Result<Int64, KafkaError>] {
            switch self {
            case .refused:
                try cluster.pushRequestErrors(.produce, Array(repeating: .topicAuthorizationFailed, count: 5))
                return await FaultTests.sendConcurrently(5, to: topic, prefix: "denied", with: producer)
            case .timedOut:
                try cluster.setBrokerDown(1)
                let outcomes = await FaultTests.sendConcurrently(5, to: topic, prefix: "lost", with: producer)
                try cluster.setBrokerUp(1)
                return outcomes
            }
        }
    }

    @Test("Every send that fails (refused by the broker, or timed out with the only broker down) reaches its caller, and its send span is marked error",
          arguments: SendFault.allCases)
    func failedSendsReachCallers(fault: SendFault) async throws {
        let (cluster, topic) = try Self.cluster(topic: "failed-\(fault.rawValue)", partitions: 1)
        let tracer = W3CRecordingTracer()
        let outcomes = try await withTracer(tracer) {
            let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServerList, properties: fault.properties))
            return try await withRunning(producer) { producer in
                _ = try await producer.send(KafkaProducerRecord(topic: topic, value: "warm-up"))
                return try await fault.sendFive(to: topic, with: producer, on: cluster)
            }
        }
        try Self.expectFailuresMatchSpans(outcomes, tracer: tracer, topic: topic, successes: 1, errorName: fault.errorName)
        cluster.shutdown()
    }

    /// Sends `count` records at once; each send's offset or error.
    static func sendConcurrently(
        _ count: Int,
        to topic: String,
        prefix: String,
        with producer: KafkaProducer
    ) async -> [Result<Int64, KafkaError>] {
        await withTaskGroup(of: Result<Int64, KafkaError>.self) { tasks in
            for index in 0..<count {
                tasks.addTask {
                    do { return .success(try await producer.send(KafkaProducerRecord(topic: topic, value: "\(prefix) \(index)")).offset) }
                    catch let error as KafkaError { return .failure(error) }
                    catch { return .failure(KafkaError(code: .rdKafka, reason: "\(error)")) }
                }
            }
            return await tasks.reduce(into: [Result<Int64, KafkaError>]()) { $0.append($1) }
        }
    }

    /// Every outcome is a failure named `errorName`, and the send spans are exactly: `successes` without an error
    /// (the warm-up), one marked error (status, recorded error, `error.type`) per failure.
    static func expectFailuresMatchSpans(
        _ outcomes: [Result<Int64, KafkaError>],
        tracer: W3CRecordingTracer,
        topic: String,
        successes: Int,
        errorName: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(outcomes.count == 5, sourceLocation: sourceLocation)
        for outcome in outcomes {
            guard case .failure(let error) = outcome else {
                Issue.record("a send that should fail succeeded: \(outcome)", sourceLocation: sourceLocation)
                continue
            }
            #expect(error.rdKafkaName == errorName, sourceLocation: sourceLocation)
        }
        let sends = tracer.spans(named: "send \(topic)")
        #expect(sends.count == successes + outcomes.count, sourceLocation: sourceLocation)
        let failed = sends.filter { $0.status?.code == .error }
        #expect(failed.count == outcomes.count, "every failed send's span is marked error", sourceLocation: sourceLocation)
        for span in failed {
            #expect(!span.errors.isEmpty, sourceLocation: sourceLocation)
            #expect(span.string("error.type") != nil, sourceLocation: sourceLocation)
        }
        #expect(sends.filter { $0.status?.code != .error }.count == successes, sourceLocation: sourceLocation)
    }

    @Test("A consumer killed (SIGKILL) before committing is replaced by another group member and nothing is lost")
    func killedConsumerIsReplaced() async throws {
        let (cluster, topic) = try Self.cluster(topic: "killed", partitions: 2)
        let servers = cluster.bootstrapServerList
        let group = Integration.group("killed")
        let total = 200
        let binary = ProcessInfo.processInfo.environment["INTEGRATION_BIN_PATH"].map { $0 + "/it-consumer" }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/it-consumer").path
        // ChildProcess (posix_spawn), not Foundation's Process, whose run() can crash the test process on Linux.
        // Not the test's own stderr: a victim left behind must never hold `swift test`'s output open.
        let victim = try ChildProcess(binary, [cluster.bootstrapServers, topic, group], standardOutput: .pipe, standardError: .nullDevice)
        let lines = Shared<[String]>([])
        let output = victim.standardOutput!
        let reader = Thread {
            while let line = output.readLine() { lines.withLock { $0.append(line) } }
        }
        reader.start()
        // Left running by a failure: killed and reaped (both do nothing once the victim has been waited for below).
        defer {
            victim.kill(SIGKILL)
            _ = victim.waitUntilExit()
        }

        try await withDeadline("the victim's assignment", .seconds(60)) {
            while !lines.withLock({ $0.contains("assigned") }) { try await Task.sleep(for: .milliseconds(50)) }
        }
        let producer = try KafkaProducer(configuration: producerConfiguration(servers))
        try await withRunning(producer) { producer in
            for index in 0..<total { _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "k\(index)", value: "v\(index)")) }
            try await producer.flush()
        }
        try await withDeadline("the victim's messages", .seconds(60)) {
            while lines.withLock({ $0.filter { $0.hasPrefix("message ") }.count }) < total / 2 { try await Task.sleep(for: .milliseconds(20)) }
        }
        victim.kill(SIGKILL)
        _ = victim.waitUntilExit()
        let seenByVictim = Set(lines.withLock { $0 }.filter { $0.hasPrefix("message ") }.map { String($0.split(separator: " ")[3]) })
        #expect(seenByVictim.count >= total / 2)

        // The replacement joins once the dead member's session (6 s) expires, and starts from the committed offsets:
        // none, since the victim never committed.
        let replacement = try KafkaConsumer(configuration: consumerConfiguration(servers, group: group, topics: [topic]))
        let messages = try await consume(replacement, count: total, limit: .seconds(90))
        let values = Set(messages.compactMap(\.valueString))
        #expect(values == Set((0..<total).map { "v\($0)" }), "lost: \(Set((0..<total).map { "v\($0)" }).subtracting(values).sorted().prefix(5))")
        #expect(seenByVictim.isSubset(of: values), "what the victim saw uncommitted is delivered again")
        cluster.shutdown()
    }
}
