import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// Transactions on the embedded broker. librdkafka 2.0.2's mock cluster answers every transactional call and takes
/// injected errors, but it discards TxnOffsetCommit, shows aborted records to `read_committed` readers and never
/// fences: the integration suite shows those on Tansu.
@Suite("Transactions: commit, abort, fatal errors, spans, misuse")
struct TransactionTests {
    func transactionalProducer(
        _ cluster: some BootstrapProviding = KafkaTestCluster.shared,
        id: String = uniqueName("tx"),
        tracer: (any Tracer)? = nil
    ) throws -> KafkaProducer {
        var configuration = producerConfiguration(cluster)
        configuration.transactionalID = id
        configuration.clientID = "pipeline"
        if let tracer { configuration.tracing.tracer = tracer }
        return try KafkaProducer(configuration: configuration)
    }

    /// A one-broker embedded cluster for a test that injects errors, with a one-partition topic.
    func clusterOfItsOwn(_ prefix: String) throws -> (EmbeddedKafkaCluster, String) {
        let cluster = try EmbeddedKafkaCluster(brokers: 1)
        let topic = uniqueName(prefix)
        try cluster.createTopic(topic)
        return (cluster, topic)
    }

    @Test("transactionTimeout is librdkafka's transaction.timeout.ms: a message timeout longer than it is refused when the producer is made, one within it is taken")
    func transactionTimeoutReachesLibrdkafka() throws {
        // librdkafka gives a transaction's records at most the transaction's time: it refuses a longer
        // message.timeout.ms, naming transaction.timeout.ms.
        func producer(transactionTimeout: Duration) throws -> KafkaProducer {
            var configuration = producerConfiguration(KafkaTestCluster.shared, properties: ["message.timeout.ms": "10000"])
            configuration.transactionalID = uniqueName("tx")
            configuration.transactionTimeout = transactionTimeout
            return try KafkaProducer(configuration: configuration)
        }
        let refused = #expect(throws: KafkaError.self) { _ = try producer(transactionTimeout: .seconds(5)) }
        #expect(refused?.code == .configuration)
        #expect(refused?.reason.contains("transaction.timeout.ms") == true, "\(String(describing: refused))")
        let taken = try producer(transactionTimeout: .seconds(20))
        taken.triggerGracefulShutdown()
    }

    @Test("A committed transaction's records arrive; its span parents the sends and says committed")
    func commitWithSpans() async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await newTopic("tx-commit", partitions: 2)
        let id = uniqueName("tx")
        let producer = try transactionalProducer(id: id, tracer: tracer)
        let value = try await withRunning(producer) { producer in
            try await tracer.withSpan("handle order", context: .topLevel) { _ in
                try await producer.withTransaction { transaction in
                    try await transaction.send(KafkaProducerRecord(topic: topic, key: "a", value: "invoice"))
                    try await transaction.enqueue(KafkaProducerRecord(topic: topic, key: "b", value: "receipt"))
                    return 42
                }
            }
        }
        #expect(value == 42)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [topic]))
        let messages = try await consume(consumer, count: 2)
        #expect(Set(messages.compactMap(\.valueString)) == ["invoice", "receipt"])

        let root = try span(tracer, "handle order")
        let transaction = try span(tracer, "transaction")
        let sends = tracer.spans(named: "send \(topic)")
        #expect(transaction.isChild(of: root) && transaction.kind == .internal)
        #expect(transaction.string("tracedkafka.transaction.outcome") == "committed")
        #expect(transaction.string("tracedkafka.transaction.id") == id)
        #expect(transaction.string("messaging.system") == "kafka")
        #expect(transaction.int("messaging.batch.message_count") == 2)
        #expect(transaction.status?.code != .error)
        #expect(sends.count == 2)
        for send in sends {
            #expect(send.isChild(of: transaction))
            #expect(send.string("tracedkafka.transaction.outcome") == "committed")
            #expect(send.int("messaging.kafka.offset") != nil)
            #expect(send.status?.code != .error)
            // A send span in a transaction ends with it, not before.
            #expect(send.endNanoseconds <= transaction.endNanoseconds + 1_000_000)
        }
        // The headers carry the send span's context, so the next service's process span continues this trace.
        let send = try #require(sends.first { $0.string("messaging.kafka.message.key") == "a" })
        let sent = try #require(messages.first { $0.keyString == "a" })
        #expect(sent.headers.values(forKey: "traceparent") == [Array("00-\(send.traceID)-\(send.spanID)-01".utf8)])
    }

    @Test("A body that throws aborts: its error is rethrown, the spans say aborted, and the next transaction commits")
    func bodyErrorAborts() async throws {
        struct PaymentDeclined: Error {}
        let tracer = W3CRecordingTracer()
        let topic = try await newTopic("tx-abort")
        let producer = try transactionalProducer(tracer: tracer)
        let next = try await withRunning(producer) { producer in
            await #expect(throws: PaymentDeclined.self) {
                try await producer.withTransaction { transaction in
                    try await transaction.send(KafkaProducerRecord(topic: topic, value: "doomed"))
                    throw PaymentDeclined()
                }
            }
            return try await producer.withTransaction { transaction in
                try await transaction.send(KafkaProducerRecord(topic: topic, value: "next"))
            }
        }
        #expect(next.offset >= 1)
        let transactions = tracer.spans(named: "transaction")
        #expect(transactions.map { $0.string("tracedkafka.transaction.outcome") } == ["aborted", "committed"])
        let aborted = transactions[0]
        #expect(aborted.status?.code == .error)
        #expect(aborted.string("error.type") == "transactionAborted")
        let doomed = try #require(tracer.spans(named: "send \(topic)").first { $0.isChild(of: aborted) })
        #expect(doomed.string("tracedkafka.transaction.outcome") == "aborted")
        #expect(doomed.status?.code == .error)
        #expect(doomed.string("error.type") == "transactionAborted")
    }

    @Test("An abortable broker error aborts with transactionAborted, and the producer takes the next transaction")
    func abortableErrorAborts() async throws {
        let (cluster, topic) = try clusterOfItsOwn("tx-abortable")
        defer { cluster.shutdown() }
        let tracer = W3CRecordingTracer()
        let producer = try transactionalProducer(cluster, tracer: tracer)
        let report = try await withRunning(producer) { producer in
            try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "warm-up")) }
            try cluster.pushRequestErrors(.addPartitionsToTxn, [.topicAuthorizationFailed])
            let error = await #expect(throws: KafkaError.self) {
                try await producer.withTransaction { transaction in
                    try await transaction.enqueue(KafkaProducerRecord(topic: topic, value: "refused"))
                }
            }
            #expect(error?.code == .transactionAborted)
            return try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "after")) }
        }
        #expect(report.offset >= 1)
        let outcomes = tracer.spans(named: "transaction").map { $0.string("tracedkafka.transaction.outcome") }
        #expect(outcomes == ["committed", "aborted", "committed"])
        let refused = try #require(tracer.spans(named: "send \(topic)").first { $0.string("tracedkafka.transaction.outcome") == "aborted" })
        #expect(refused.status?.code == .error)
    }

    @Test("An abort the coordinator refuses is retried before the next transaction, which then commits")
    func failedAbortIsRetried() async throws {
        struct Declined: Error {}
        let (cluster, topic) = try clusterOfItsOwn("tx-abort-retry")
        defer { cluster.shutdown() }
        let producer = try transactionalProducer(cluster)
        let report = try await withRunning(producer) { producer in
            try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "warm-up")) }
            try cluster.pushRequestErrors(.endTxn, [.unknownServerError])
            await #expect(throws: Declined.self) {
                try await producer.withTransaction { transaction in
                    try await transaction.send(KafkaProducerRecord(topic: topic, value: "doomed"))
                    throw Declined()
                }
            }
            return try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "after")) }
        }
        #expect(report.offset >= 2)
    }

    @Test(
        "A fenced producer stops: the transaction throws fatal, so does every later call and run()",
        arguments: [(KafkaAPIKey.endTxn, "at commit"), (KafkaAPIKey.addPartitionsToTxn, "at its first send")]
    )
    func fencedIsFatal(fencedOn request: KafkaAPIKey, when: String) async throws {
        let (cluster, topic) = try clusterOfItsOwn("tx-fenced")
        defer { cluster.shutdown() }
        let tracer = W3CRecordingTracer()
        let producer = try transactionalProducer(cluster, tracer: tracer)
        let run = Task { try await producer.run() }
        try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "first")) }
        // The mock does not fence; the coordinator's answer to a fenced producer is injected instead.
        try cluster.pushRequestErrors(request, [.producerFenced])
        let error = await #expect(throws: KafkaError.self) {
            try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "second")) }
        }
        #expect(error?.code == .fatal)
        let again = await #expect(throws: KafkaError.self) {
            try await producer.withTransaction { try await $0.send(KafkaProducerRecord(topic: topic, value: "third")) }
        }
        #expect(again?.code == .fatal)
        let runError = await #expect(throws: KafkaError.self) { try await withDeadline("run returns", .seconds(30)) { try await run.value } }
        #expect(runError?.code == .fatal)
        let failed = tracer.spans(named: "transaction").last
        #expect(failed?.string("tracedkafka.transaction.outcome") == "aborted")
        #expect(failed?.status?.code == .error)
    }

    @Test("Offsets sent with a transaction: the call succeeds for a manual-commit consumer and is refused otherwise")
    func sendOffsets() async throws {
        let tracer = W3CRecordingTracer()
        let input = try await newTopic("tx-in"), output = try await newTopic("tx-out")
        let seed = try KafkaProducer(configuration: producerConfiguration(KafkaTestCluster.shared))
        _ = try await withRunning(seed) { try await $0.send(KafkaProducerRecord(topic: input, key: "k", value: "order")) }
        var configuration = consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [input], commitMode: .manual)
        configuration.tracing.tracer = tracer
        let consumer = try KafkaConsumer(configuration: configuration)
        let producer = try transactionalProducer(tracer: tracer)
        _ = try await withRunning(producer) { producer in
            try await handle(consumer, count: 1) { message in
                try await producer.withTransaction { transaction in
                    try await transaction.send(KafkaProducerRecord(topic: output, value: "invoice for \(message.valueString ?? "")"))
                    try await transaction.sendOffsets(after: message, of: consumer)
                    // Positions Kafka cannot have are refused before they reach the coordinator.
                    let bad = await #expect(throws: KafkaError.self) {
                        try await transaction.sendOffsets([KafkaTopicPartitionOffset(topic: input, partition: 0, offset: -5)], of: consumer)
                    }
                    #expect(bad?.code == .invalidOffset)
                }
            }
        }
        // The next service reads the output.
        var next = consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("next"), topics: [output])
        next.tracing.tracer = tracer
        try await handle(try KafkaConsumer(configuration: next), count: 1)

        // Consume-transform-produce in one trace: process span -> transaction span -> send span -> the next process span.
        let process = try span(tracer, "process \(input)")
        let send = try span(tracer, "send \(output)")
        let transaction = try span(tracer, "transaction")
        let nextProcess = try span(tracer, "process \(output)")
        #expect(transaction.isChild(of: process) && send.isChild(of: transaction) && nextProcess.isChild(of: send))
        #expect(nextProcess.links(to: send))
        #expect(transaction.eventNames == ["offsets sent"])
        #expect(transaction.string("tracedkafka.transaction.outcome") == "committed")

        let selfCommitting = try KafkaConsumer(configuration: consumerConfiguration(KafkaTestCluster.shared, group: uniqueName("g"), topics: [input]))
        let other = try transactionalProducer()
        try await withRunning(other) { producer in
            let error = await #expect(throws: KafkaError.self) {
                try await producer.withTransaction { transaction in
                    try await transaction.sendOffsets([KafkaTopicPartitionOffset(topic: input, partition: 0, offset: 1)], of: selfCommitting)
                }
            }
            #expect(error?.code == .configuration)
        }
        selfCommitting.triggerGracefulShutdown()
    }

    @Test("Misuse is refused clearly: plain sends, a stale transaction, two at once, no id, the file queue, bad settings")
    func misuse() async throws {
        let topic = try await newTopic("tx-misuse")
        let producer = try transactionalProducer()
        try await withRunning(producer) { producer in
            let plain = await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerRecord(topic: topic, value: "x")) }
            #expect(plain?.code == .notInTransaction)
            let enqueued = await #expect(throws: KafkaError.self) { try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "x")) }
            #expect(enqueued?.code == .notInTransaction)

            let escaped = try await producer.withTransaction { $0 }
            let stale = await #expect(throws: KafkaError.self) { try await escaped.send(KafkaProducerRecord(topic: topic, value: "late")) }
            #expect(stale?.code == .notInTransaction)

            try await producer.withTransaction { transaction in
                let second = await #expect(throws: KafkaError.self) { try await producer.withTransaction { _ in } }
                #expect(second?.code == .alreadyRunning)
                try await transaction.send(KafkaProducerRecord(topic: topic, value: "fine"))
            }
        }

        let plainProducer = try KafkaProducer(configuration: producerConfiguration(KafkaTestCluster.shared))
        let noID = await #expect(throws: KafkaError.self) { try await plainProducer.withTransaction { _ in } }
        #expect(noID?.code == .configuration)
        plainProducer.triggerGracefulShutdown()

        var fileQueue = producerConfiguration(.fileQueue)
        fileQueue.transactionalID = "fq"
        let unsupported = #expect(throws: KafkaError.self) { try KafkaProducer(configuration: fileQueue) }
        #expect(unsupported?.code == .unsupported)

        var leaderAcks = producerConfiguration(KafkaTestCluster.shared)
        leaderAcks.transactionalID = "acks"
        leaderAcks.acks = .leader
        let acks = #expect(throws: KafkaError.self) { try KafkaProducer(configuration: leaderAcks) }
        #expect(acks?.code == .configuration)
        var empty = producerConfiguration(KafkaTestCluster.shared)
        empty.transactionalID = ""
        let emptyID = #expect(throws: KafkaError.self) { try KafkaProducer(configuration: empty) }
        #expect(emptyID?.code == .configuration)
    }

    @Test("Shutting down during a transaction aborts it: the commit fails with shutDown and the spans say aborted")
    func shutdownAborts() async throws {
        let tracer = W3CRecordingTracer()
        let topic = try await newTopic("tx-shutdown")
        let producer = try transactionalProducer(tracer: tracer)
        let run = Task { try await producer.run() }
        let error = await #expect(throws: KafkaError.self) {
            try await producer.withTransaction { transaction in
                try await transaction.send(KafkaProducerRecord(topic: topic, value: "cut short"))
                producer.triggerGracefulShutdown()
                try await withDeadline("shut down", .seconds(30)) { try await run.value }
            }
        }
        #expect(error?.code == .shutDown)
        let transaction = try span(tracer, "transaction")
        #expect(transaction.string("tracedkafka.transaction.outcome") == "aborted")
        #expect(tracer.spans(named: "send \(topic)").map { $0.string("tracedkafka.transaction.outcome") } == ["aborted"])
    }
}
