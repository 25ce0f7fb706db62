/// What a producer backend reports when a record's fate is known.
typealias DeliveryHandler = @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

/// The boundary under ``KafkaProducer``: what a backend (librdkafka, or the local file queue) must do.
/// The public API and the tracing layer above it never know which backend runs.
protocol KafkaProducerBackend: AnyObject, Sendable {
    /// Hands a record to the backend if its queue has room, without waiting: the per-record fast path. The
    /// record's headers are written first, then `traceHeaders`.
    /// - Returns: `true` when the backend took the record: `onDelivery` (if any) will be called exactly once, from
    ///   any thread. `false` when the queue is full: nothing was kept; wait with ``waitForRoom(after:)``.
    /// - Throws: ``KafkaError`` when the record is refused (invalid, or the backend is shut down); then
    ///   `onDelivery` is never called.
    func offer(
        _ record: KafkaProducerRecord,
        traceHeaders: InjectedTraceHeaders,
        id: KafkaProducerMessageID,
        onDelivery: DeliveryHandler?
    ) throws -> Bool

    /// Read before an ``offer(_:traceHeaders:id:onDelivery:)`` that may find the queue full, and passed to
    /// ``waitForRoom(after:)``, so room made between the two is never missed.
    var roomToken: UInt64 { get }

    /// Parks, without blocking a thread, until the queue may have room again. Returns at once when room may have
    /// appeared since `token` was read, when the backend is closing, or when the task is cancelled.
    func waitForRoom(after token: UInt64) async

    /// Waits until every record handed over so far has its outcome, or the timeout passes.
    /// - Throws: ``KafkaError/Code/timedOut`` when records are still outstanding at the timeout.
    func flush(timeout: Duration) async throws

    /// Delivers what it can within `flushTimeout`, fails every record left (their handlers are called with an
    /// error), and frees the backend's resources. Safe to call more than once.
    func close(flushTimeout: Duration) async

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
    /// For a backend whose ``waitForRoom(after:)`` checks for room under the same lock as
    /// ``offer(_:traceHeaders:id:onDelivery:)`` (the file queue): no token is needed.
    var roomToken: UInt64 { 0 }

    /// For a backend without transactions (the file queue, which refuses a transactional id before it comes to this).
    func transactionCall(_ call: TransactionCall, timeout: Duration) async throws {
        throw KafkaError(code: .unsupported, reason: "The file queue has no transactions")
    }
}
