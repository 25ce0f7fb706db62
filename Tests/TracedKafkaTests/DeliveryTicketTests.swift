import Testing
import Tracing
@_spi(Benchmarks) @testable import TracedKafka
import TracedKafkaTesting

/// A sent record's ticket: its outcome may come before or after its sender waits, the sender may be cancelled,
/// and a transaction may hold its span; the span ends exactly once with the broker's outcome.
@Suite("A sent record's delivery ticket", .timeLimit(.minutes(1)))
struct DeliveryTicketTests {
    static func report(offset: Int64) -> KafkaDeliveryReport {
        KafkaDeliveryReport(messageID: KafkaProducerMessageID(rawValue: 7), topic: "orders", partition: 2, offset: offset, timestamp: nil)
    }

    /// A ticket for a record to `orders`, with a recording send span when a tracer is given.
    static func ticket(inTransaction: Bool = false, tracer: W3CRecordingTracer? = nil) -> DeliveryTicket {
        let span = tracer.map { tracer in
            KafkaProducerTracing.SendSpan(
                span: tracer.startSpan("send orders", context: .topLevel, ofKind: .producer),
                attributes: [:],
                chosenPartition: nil
            )
        }
        return DeliveryTicket(
            id: KafkaProducerMessageID(rawValue: 7),
            record: KafkaProducerRecord(topic: "orders", value: "v"),
            span: span,
            inTransaction: inTransaction,
            events: nil,
            metrics: nil
        )
    }

    /// Returns once the sender waits in `value` (no sleep decides it).
    static func untilAwaited(_ ticket: DeliveryTicket) async {
        while !ticket.isAwaited { await Task.yield() }
    }

    @Test("An outcome that comes before the sender waits is returned when it does")
    func outcomeBeforeWaiting() async throws {
        let ticket = Self.ticket()
        ticket.deliver(.success(Self.report(offset: 41)))
        #expect(try await ticket.outcome().offset == 41)
    }

    @Test("A waiting sender is resumed with the outcome; a second outcome is ignored")
    func waitingBeforeOutcome() async throws {
        let ticket = Self.ticket()
        let waiting = Task { try await ticket.outcome() }
        await Self.untilAwaited(ticket)
        ticket.deliver(.success(Self.report(offset: 42)))
        ticket.deliver(.success(Self.report(offset: 99)))
        #expect(try await waiting.value.offset == 42)
    }

    @Test("A failed delivery is thrown to the waiting sender as the KafkaError it came with")
    func failure() async throws {
        let ticket = Self.ticket()
        let waiting = Task { try await ticket.outcome() }
        await Self.untilAwaited(ticket)
        ticket.deliver(.failure(KafkaError(code: .timedOut, reason: "no answer")))
        let error = await #expect(throws: KafkaError.self) { try await waiting.value }
        #expect(error?.code == .timedOut)
        #expect(error?.reason == "no answer")
    }

    @Test("A sender cancelled while it waits resumes at once with .cancelled; the later outcome still ends the span")
    func cancelledWhileWaiting() async throws {
        let tracer = W3CRecordingTracer()
        let ticket = Self.ticket(tracer: tracer)
        let waiting = Task { try await ticket.outcome() }
        await Self.untilAwaited(ticket)
        waiting.cancel()
        // No outcome has come: only the cancellation can end the wait.
        let error = await #expect(throws: KafkaError.self) { try await waiting.value }
        #expect(error?.code == .cancelled)
        #expect(tracer.finishedSpans.isEmpty, "the span waits for the broker's outcome")
        ticket.deliver(.success(Self.report(offset: 43)))
        let span = try #require(tracer.finishedSpans.first)
        #expect(span.int("messaging.kafka.offset") == 43)
    }

    /// The outcome of `ticket` awaited by a task that is cancelled before it waits (it cancels itself first).
    static func awaitedCancelled(_ ticket: DeliveryTicket) async throws -> KafkaDeliveryReport {
        try await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ticket.outcome()
        }.value
    }

    @Test("A sender cancelled before it waits gets .cancelled; one whose outcome came first gets the outcome")
    func cancelledBeforeWaiting() async throws {
        let unanswered = Self.ticket()
        #expect((await #expect(throws: KafkaError.self) { try await Self.awaitedCancelled(unanswered) })?.code == .cancelled)
        #expect(!unanswered.isAwaited)

        let answered = Self.ticket()
        answered.deliver(.success(Self.report(offset: 44)))
        #expect(try await Self.awaitedCancelled(answered).offset == 44)
    }

    @Test("Outcomes, waiters and cancellations racing: each sender returns once, each span ends once with its outcome")
    func racing() async throws {
        let tracer = W3CRecordingTracer()
        let tickets = (0..<2_000).map { _ in Self.ticket(tracer: tracer) }
        let results = await withTaskGroup(of: Int64?.self) { group in
            for (index, ticket) in tickets.enumerated() {
                let sender = Task { try await ticket.outcome().offset }
                group.addTask {
                    do { return try await sender.value } catch { return (error as? KafkaError)?.code == .cancelled ? -1 : nil }
                }
                group.addTask {
                    ticket.deliver(.success(Self.report(offset: Int64(index))))
                    return -2
                }
                if index.isMultiple(of: 2) { group.addTask { sender.cancel(); return -2 } }
            }
            return await group.reduce(into: [Int64?]()) { $0.append($1) }
        }
        #expect(!results.contains(nil), "every sender got its outcome or .cancelled")
        let delivered = results.compactMap { $0 }.filter { $0 >= 0 }
        #expect(Set(delivered).count == delivered.count, "no outcome reached two senders")
        #expect(delivered.count + results.filter { $0 == -1 }.count == 2_000)
        let spans = tracer.finishedSpans
        #expect(spans.count == 2_000)
        #expect(spans.allSatisfy { $0.int("messaging.kafka.offset") != nil })
    }

    @Test("In a transaction, the span ends once both the outcome and the transaction's are known, in either order")
    func heldByTransaction() throws {
        let tracer = W3CRecordingTracer()
        let deliveredFirst = Self.ticket(inTransaction: true, tracer: tracer)
        deliveredFirst.deliver(.success(Self.report(offset: 1)))
        #expect(tracer.finishedSpans.isEmpty)
        deliveredFirst.settle(.committed)
        #expect(tracer.finishedSpans.count == 1)

        let settledFirst = Self.ticket(inTransaction: true, tracer: tracer)
        settledFirst.settle(.aborted(KafkaError(code: .transactionAborted, reason: "body threw")))
        #expect(tracer.finishedSpans.count == 1)
        settledFirst.deliver(.success(Self.report(offset: 2)))
        let spans = tracer.finishedSpans
        try #require(spans.count == 2)
        #expect(spans[0].string("tracedkafka.transaction.outcome") == "committed")
        #expect(spans[1].string("tracedkafka.transaction.outcome") == "aborted")
        #expect(spans[1].string("error.type") == "transactionAborted")
    }

    @Test("A refused record's span ends at once with the error, even in a transaction; a later report changes nothing")
    func refused() throws {
        let tracer = W3CRecordingTracer()
        let ticket = Self.ticket(inTransaction: true, tracer: tracer)
        ticket.refuse(KafkaError(code: .invalidRecord, reason: "bad"))
        ticket.deliver(.success(Self.report(offset: 3)))
        ticket.settle(.committed)
        let spans = tracer.finishedSpans
        try #require(spans.count == 1)
        #expect(spans[0].string("error.type") == "invalidRecord")
        #expect(spans[0].int("messaging.kafka.offset") == nil)
    }

    @Test("librdkafka gives each ticket back exactly once: at once when its queue is full, after the delivery report otherwise")
    func librdkafkaReleasesTickets() async throws {
        // The ticket goes to librdkafka retained, as the record's msg_opaque; a ticket never given back would stay
        // alive, one given back twice would crash.
        let cluster = try EmbeddedKafkaCluster(brokers: 1)
        try cluster.createTopic("orders", partitions: 1)
        // A broker that is down keeps the first record in librdkafka's queue of one while the second is offered.
        try cluster.setBrokerDown(1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster, properties: ["queue.buffering.max.messages": "1"]))
        let record = KafkaProducerRecord(topic: "orders", value: "v")
        weak var deliveredTicket: DeliveryTicket?
        weak var refusedTicket: DeliveryTicket?
        let outcome: KafkaDeliveryReport
        do {
            let delivered = Self.ticket(), refused = Self.ticket()
            deliveredTicket = delivered
            refusedTicket = refused
            #expect(try producer.backend.offer(record, trailingHeaders: TrailingHeaders(), ticket: delivered))
            #expect(try producer.backend.offer(record, trailingHeaders: TrailingHeaders(), ticket: refused) == false, "the queue was full")
            try cluster.setBrokerUp(1)
            outcome = try await delivered.outcome()
        }
        #expect(outcome.offset == 0)
        #expect(refusedTicket == nil, "a record librdkafka refused gave its ticket back at once")
        producer.triggerGracefulShutdown()
        // Returns once the producer has shut down, its poll thread (which serves delivery reports) joined.
        try await producer.run()
        #expect(deliveredTicket == nil, "the delivery report gave the ticket back")
    }
}
