import Synchronization
import Tracing

/// An open transaction of a transactional ``KafkaProducer``: the records sent through it, and the consumer offsets
/// sent with it, are committed together or not at all.
///
/// You get one from ``KafkaProducer/withTransaction(timeout:_:)``, which commits it when its closure returns and
/// aborts it when the closure throws. Use it only inside that closure: afterwards its calls throw
/// ``KafkaError/Code/notInTransaction``.
///
/// ```swift
/// import TracedKafka
///
/// func invoice(_ order: KafkaConsumerMessage, of consumer: KafkaConsumer, with producer: KafkaProducer) async throws {
///     try await producer.withTransaction { transaction in
///         try await transaction.send(KafkaProducerRecord(topic: "invoices", key: order.key, value: order.value))
///         try await transaction.sendOffsets(after: order, of: consumer)
///     }
/// }
/// ```
public final class KafkaTransaction: Sendable {
    /// The producer's transactional id.
    public let transactionalID: String
    private let producer: KafkaProducer
    /// Which of the producer's transactions this is (its state is the producer's, under the producer's lock).
    let number: UInt64
    /// The `transaction` span, when tracing records one.
    private let span: (any Span)?
    /// How long a call to the coordinator may take (the `timeout` of ``KafkaProducer/withTransaction(timeout:_:)``).
    private let timeout: Duration

    init(producer: KafkaProducer, transactionalID: String, number: UInt64, span: (any Span)?, timeout: Duration) {
        self.producer = producer
        self.transactionalID = transactionalID
        self.number = number
        self.span = span
        self.timeout = timeout
    }

    /// Sends a record in the transaction and waits until the broker has written it.
    ///
    /// The record is in the partition's log once this returns, but `read_committed` consumers see it only when the
    /// transaction commits (and never, if it aborts). Its send span is a child of the transaction span and ends
    /// with the transaction, carrying the outcome. Cancellation is as for ``KafkaProducer/send(_:)``: a record
    /// handed over is part of the transaction whatever its sender does.
    /// - Parameter record: The record to send.
    /// - Returns: Where the record was written.
    /// - Throws: as ``KafkaProducer/send(_:)``; ``KafkaError/Code/notInTransaction`` after the transaction ended.
    @discardableResult
    nonisolated(nonsending) public func send(_ record: KafkaProducerRecord) async throws -> KafkaDeliveryReport {
        try await producer.send(record, in: number)
    }

    /// Sends a record in the transaction without waiting for the broker; the transaction's commit waits for it.
    /// - Parameter record: The record to send.
    /// - Returns: The identifier its event will carry (see ``KafkaProducer/enqueue(_:)``).
    /// - Throws: as ``KafkaProducer/enqueue(_:)``; ``KafkaError/Code/notInTransaction`` after the transaction ended.
    @discardableResult
    nonisolated(nonsending) public func enqueue(_ record: KafkaProducerRecord) async throws -> KafkaProducerMessageID {
        try await producer.enqueue(record, in: number)
    }

    /// Commits a consumer's positions with the transaction: the exactly-once step of consume-transform-produce.
    ///
    /// The positions are committed for the consumer's group when the transaction commits, and not at all when it
    /// aborts (the messages are then read again). The consumer must commit nothing itself
    /// (``KafkaConsumerConfiguration/CommitMode/manual``).
    /// - Parameters:
    ///   - offsets: For each partition, the offset of the next message to read.
    ///   - consumer: The consumer whose group the offsets belong to.
    /// - Throws: ``KafkaError/Code/notInTransaction`` after the transaction ended; ``KafkaError/Code/configuration``
    ///   for a consumer that commits by itself; ``KafkaError/Code/noGroup`` for one without a group;
    ///   ``KafkaError/Code/unknownPartition`` or ``KafkaError/Code/invalidOffset`` for a bad position; librdkafka's
    ///   error when the group coordinator refuses them (abortable: the transaction will not commit).
    public func sendOffsets(_ offsets: [KafkaTopicPartitionOffset], of consumer: KafkaConsumer) async throws {
        try producer.core.machine.withLock { try $0.requireOpen(number) }
        for offset in offsets { try offset.validateForCommit() }
        guard !offsets.isEmpty else { return }
        let metadata = try consumer.groupMetadataForTransaction()
        try await producer.transactionStep(.sendOffsets(offsets, metadata), timeout: timeout)
        if let span, span.isRecording {
            span.addEvent(SpanEvent(name: "offsets sent", attributes: ["tracedkafka.transaction.offset_count": .int64(Int64(offsets.count))]))
        }
    }

    /// Commits a consumer's positions after the given messages with the transaction: for each partition, the
    /// offset after the last of them.
    /// - Parameters:
    ///   - messages: Messages the consumer handled in this transaction.
    ///   - consumer: The consumer that read them.
    /// - Throws: as ``sendOffsets(_:of:)``.
    public func sendOffsets(after messages: [KafkaConsumerMessage], of consumer: KafkaConsumer) async throws {
        // Per partition, the position after its last message.
        var next: [KafkaTopicPartition: KafkaTopicPartitionOffset] = [:]
        for message in messages {
            let position = message.nextOffset
            let partition = KafkaTopicPartition(topic: position.topic, partition: position.partition)
            if position.offset > next[partition]?.offset ?? -1 { next[partition] = position }
        }
        try await sendOffsets(next.values.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }, of: consumer)
    }

    /// Commits a consumer's position after one message with the transaction.
    /// - Parameters:
    ///   - message: The message handled last in its partition.
    ///   - consumer: The consumer that read it.
    /// - Throws: as ``sendOffsets(_:of:)``.
    public func sendOffsets(after message: KafkaConsumerMessage, of consumer: KafkaConsumer) async throws {
        try await sendOffsets([message.nextOffset], of: consumer)
    }
}

/// How a transaction ended.
enum TransactionOutcome: Sendable {
    case committed
    /// Aborted, with the error its records' spans record.
    case aborted(KafkaError)

    /// The value of `tracedkafka.transaction.outcome`.
    var name: String {
        switch self {
        case .committed: return "committed"
        case .aborted: return "aborted"
        }
    }
}

extension KafkaProducer {
    /// Runs `body` in a transaction: commits it when `body` returns, aborts it when `body` throws.
    ///
    /// Send with the ``KafkaTransaction`` the closure gets, and hand it the consumer's positions with
    /// ``KafkaTransaction/sendOffsets(after:of:)-(KafkaConsumerMessage,_)`` for exactly-once consume-transform-produce.
    /// One transaction at a time per producer. The first call registers the transactional id with the cluster
    /// (fencing an older instance with the same id).
    ///
    /// - Abortable failures (a record not delivered, the coordinator refusing the commit, the commit not finishing
    ///   within `timeout`) abort the transaction and throw ``KafkaError/Code/transactionAborted``; the next
    ///   transaction can run.
    /// - Fatal failures (this producer was fenced by a newer instance, its producer id expired) throw
    ///   ``KafkaError/Code/fatal``: the producer shuts down, ``KafkaProducer/run()`` throws the same error, and every
    ///   later call fails with it.
    /// - When `body` throws, the transaction is aborted and `body`'s error is rethrown — unless the producer hit a
    ///   fatal error meanwhile (a send in `body` failed because the producer was fenced): then that fatal error.
    ///
    /// With tracing on, the transaction runs in an INTERNAL span `transaction`, a child of the ambient span, whose
    /// children are the send spans inside it; it ends with the outcome (`tracedkafka.transaction.outcome`), and
    /// with error status and `error.type` when it aborts — as do the spans of its records.
    /// - Parameters:
    ///   - timeout: How long each call to the transaction coordinator may take — registering the id, sending
    ///     offsets, committing, aborting — retries of retriable errors included.
    ///   - body: The work of the transaction.
    /// - Returns: What `body` returns.
    /// - Throws: `body`'s error; ``KafkaError/Code/transactionAborted``; ``KafkaError/Code/fatal``;
    ///   ``KafkaError/Code/timedOut`` when the id could not be registered in time (try again);
    ///   ``KafkaError/Code/configuration`` for a producer without ``KafkaProducerConfiguration/transactionalID``;
    ///   ``KafkaError/Code/alreadyRunning`` while another transaction of this producer is open;
    ///   ``KafkaError/Code/shutDown`` after shutdown (an open transaction is aborted by shutdown).
    ///
    /// Cancellation reaches `body` (its sends and waits throw ``KafkaError/Code/cancelled``, so the transaction
    /// aborts); the calls to the coordinator are not interrupted by it: a transaction whose `body` returned is
    /// committed.
    @discardableResult
    nonisolated(nonsending) public func withTransaction<Value>(
        timeout: Duration = .seconds(30),
        _ body: (KafkaTransaction) async throws -> Value
    ) async throws -> Value {
        guard let transactionalID = configuration.transactionalID else {
            throw KafkaError(code: .configuration, reason: "withTransaction needs a producer configured with a transactionalID")
        }
        let (initialize, abortFirst) = try core.machine.withLock { try $0.startTransactionRun() }
        defer { core.machine.withLock { $0.transactionRunEnded() } }
        if initialize {
            try await transactionStep(.initialize, timeout: timeout)
            core.machine.withLock { $0.transactionsDidInitialize() }
        }
        if abortFirst { try await transactionStep(.abort, timeout: timeout) }
        core.machine.withLock { $0.willBeginTransaction() }
        try await transactionStep(.begin, timeout: timeout)
        let number = core.machine.withLock { $0.transactionBegan() }

        let span = tracing.startTransaction(transactionalID)
        let transaction = KafkaTransaction(producer: self, transactionalID: transactionalID, number: number, span: span, timeout: timeout)
        let value: Value
        do {
            if let span {
                value = try await InstrumentationContext.withValue(span.context) { try await body(transaction) }
            } else {
                value = try await body(transaction)
            }
        } catch {
            let aborted = KafkaError(code: .transactionAborted, reason: "The transaction was aborted because its body threw: \(error)")
            await abort(transaction, span: span, timeout: timeout, as: aborted)
            // A send that failed because the producer was fenced meanwhile: the fatal error is what the caller must see.
            if let fatal = core.machine.withLock({ $0.fatal }) { throw fatal }
            throw error
        }
        do {
            try await transactionCall(.commit, timeout: timeout)
        } catch let failure as TransactionCallFailure {
            let aborted = KafkaError(
                code: .transactionAborted,
                reason: "The transaction was aborted: its commit failed: \(failure.error.reason)",
                rdKafkaCode: failure.error.rdKafkaCode
            )
            await abort(transaction, span: span, timeout: timeout, as: aborted)
            throw aborted
        } catch {
            // Fatal (the producer stops), or shut down (which aborted the transaction).
            let cause = error as? KafkaError ?? KafkaError(code: .transactionAborted, reason: "\(error)")
            finish(transaction, span: span, .aborted(cause))
            throw cause
        }
        finish(transaction, span: span, .committed)
        return value
    }

    /// Aborts after a failure, then ends the transaction's spans with `error`.
    private func abort(_ transaction: KafkaTransaction, span: (any Span)?, timeout: Duration, as error: KafkaError) async {
        do {
            try await transactionCall(.abort, timeout: timeout)
        } catch {
            // Not finished (a fatal error has stopped the producer already): the next transaction tries again first.
            logger.error("Aborting the transaction failed: \(error)")
        }
        finish(transaction, span: span, .aborted(error))
    }

    /// The transaction has its outcome: later sends in it are refused, its held send spans and its own span end.
    private func finish(_ transaction: KafkaTransaction, span: (any Span)?, _ outcome: TransactionOutcome) {
        let (held, sent) = core.machine.withLock { $0.endTransaction(transaction.number, outcome) }
        for ticket in held { ticket.settle(outcome) }
        if let span { KafkaProducerTracing.endTransaction(span, outcome: outcome, sentCount: sent) }
    }

    /// A transactional call whose failure the caller hands on as it is.
    /// - Throws: ``KafkaError``.
    func transactionStep(_ call: TransactionCall, timeout: Duration) async throws {
        do {
            try await transactionCall(call, timeout: timeout)
        } catch let failure as TransactionCallFailure {
            throw failure.error
        }
    }

    /// Makes a transactional call, again while librdkafka calls its error retriable and `timeout` has not passed;
    /// a fatal error stops the producer. Tells the state machine when a commit or abort finished (or an abort
    /// did not: the next transaction then aborts first).
    /// - Throws: ``TransactionCallFailure`` for a failure that leaves the producer usable; ``KafkaError`` for a
    ///   fatal one (code ``KafkaError/Code/fatal``) or after shutdown.
    func transactionCall(_ call: TransactionCall, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                try await backend.transactionCall(call, timeout: max(.milliseconds(1), deadline - .now))
                if call.endsTransaction { core.machine.withLock { $0.transactionCallEnded(finished: true) } }
                return
            } catch let failure as TransactionCallFailure {
                switch failure.kind {
                case .retriable where ContinuousClock.now < deadline:
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                case .fatal:
                    core.fail(failure.error, logger: logger)
                default:
                    break
                }
                if call.endsTransaction {
                    // A failed commit leaves the transaction to abort; a failed abort, to abort again.
                    core.machine.withLock { $0.transactionCallEnded(finished: false) }
                }
                throw failure.kind == .fatal ? failure.error : failure
            }
        }
    }
}

extension TransactionCall {
    /// Whether the call ends the backend's transaction (commit or abort).
    var endsTransaction: Bool {
        switch self {
        case .commit, .abort: return true
        case .initialize, .begin, .sendOffsets: return false
        }
    }
}
