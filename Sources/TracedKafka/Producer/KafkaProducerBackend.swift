/// The boundary under ``KafkaProducer``: what a backend (librdkafka, or the local file queue) must do.
/// The public API and the tracing layer above it never know which backend runs.
///
/// The producer's ``ProducerCore`` calls ``offer(_:trailingHeaders:ticket:)`` only while the backend is open: closing
/// waits for the offers under way and starts no more, so a backend needs no lock of its own around them. A backend
/// reports each taken record's outcome to its ticket, and calls ``ProducerCore/roomMade()`` whenever a full queue
/// may have room again.
protocol KafkaProducerBackend: AnyObject, Sendable {
    /// Hands a record to the backend if its queue has room, without waiting: the per-record path. The record's
    /// headers are written first, then `trailingHeaders`.
    /// - Returns: `true` when the backend took the record: its `ticket` (if any) gets the outcome exactly once,
    ///   from any thread. `false` when the queue is full: nothing was kept.
    /// - Throws: ``KafkaError`` when the record is refused; then the ticket hears nothing from the backend.
    func offer(_ record: KafkaProducerRecord, trailingHeaders: TrailingHeaders, ticket: DeliveryTicket?) throws -> Bool

    /// Waits until every record handed over so far has its outcome, or the timeout passes. ``KafkaProducer`` calls it
    /// only while the producer runs (once shutdown has begun it throws ``KafkaError/Code/shutDown`` without calling
    /// it), but a flush under way is not a call that closing waits for: librdkafka's client runs its close after
    /// the flush on their one serial queue; the file queue's close runs beside it.
    /// - Throws: ``KafkaError/Code/timedOut`` when records are still outstanding at the timeout,
    ///   ``KafkaError/Code/cancelled`` when the task is cancelled first.
    func flush(timeout: Duration) async throws

    /// Delivers what it can within `flushTimeout`, fails every record left (their tickets get an error), and frees
    /// the backend's resources. Called once, when no offer is under way.
    /// - Parameters:
    ///   - flushTimeout: How long delivering what is queued may take.
    ///   - abortTransaction: Whether a transaction may be open; it is aborted first (its records fail).
    func close(flushTimeout: Duration, abortTransaction: Bool) async

    /// Makes one transactional call and waits for its outcome (librdkafka only).
    /// - Throws: ``TransactionCallFailure`` with librdkafka's classification of the error,
    ///   ``KafkaError/Code/shutDown`` once the backend is closing, ``KafkaError/Code/unsupported`` on a backend
    ///   without transactions.
    func transactionCall(_ call: TransactionCall, timeout: Duration) async throws
}

/// A call of librdkafka's transactional API.
enum TransactionCall: Sendable {
    /// `rd_kafka_init_transactions`: registers the transactional id, fencing older instances; once per producer.
    case initialize
    /// `rd_kafka_begin_transaction`.
    case begin
    /// `rd_kafka_send_offsets_to_transaction`: the consumer's positions, committed with the transaction.
    case sendOffsets([KafkaTopicPartitionOffset], RDGroupMetadata)
    /// `rd_kafka_commit_transaction`: flushes the transaction's records, then commits.
    case commit
    /// `rd_kafka_abort_transaction`: purges the transaction's records, then aborts.
    case abort
}

/// A transactional call that failed, with librdkafka's verdict on what may follow.
struct TransactionCallFailure: Error {
    enum Kind {
        /// The same call may be made again (a timeout, a coordinator moving).
        case retriable
        /// The transaction must be aborted; the producer takes the next one.
        case abortable
        /// The producer cannot go on (fenced, or its producer id expired).
        case fatal
        /// Anything else (a call out of order).
        case other
    }

    let error: KafkaError
    let kind: Kind
}

extension KafkaProducerBackend {
    /// For a backend without transactions (the file queue, which refuses a transactional id before it comes to this).
    func transactionCall(_ call: TransactionCall, timeout: Duration) async throws {
        throw KafkaError(code: .unsupported, reason: "The file queue has no transactions")
    }
}
