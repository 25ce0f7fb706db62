import Synchronization

/// A record handed to the backend, on its way to its outcome: what hears of the outcome (an awaiting sender, the
/// events stream), its send span and its metrics.
///
/// Made for a record whose outcome somebody observes; a record nobody observes is sent without one. The backend
/// reports the outcome exactly once with ``deliver(_:)``, from any thread; then the span ends (in a transaction, once
/// the transaction's outcome is known too), the metrics count the send, the event is yielded and the sender resumes,
/// in that order.
@usableFromInline
final class DeliveryTicket: Sendable {
    let id: KafkaProducerMessageID
    let topic: String
    /// The partition the sender chose, if it chose one.
    let partition: Int?
    /// Where the outcome goes as an event (records sent with ``KafkaProducer/enqueue(_:)``).
    private let events: BoundedEventStream<KafkaProducerEvent>?
    /// Counts the send, when metrics are on.
    private let metrics: KafkaClientMetrics?
    private let metricsStart: MetricsInstant?
    /// Whether a transaction holds the span until its outcome is known.
    let isHeldByTransaction: Bool
    private let state: Mutex<State>

    private struct State {
        var span: KafkaProducerTracing.SendSpan?
        /// The record's outcome, once the backend reported it.
        var result: Result<KafkaDeliveryReport, KafkaError>?
        /// The transaction's outcome, once it is known (held tickets only).
        var transactionOutcome: TransactionOutcome?
        /// The sender awaiting ``outcome()``, until it is resumed.
        var waiter: UnsafeContinuation<KafkaDeliveryReport, any Error>?
        /// The awaiting sender's task was cancelled: it has been (or will be) resumed with ``KafkaError/Code/cancelled``.
        var isCancelled = false

        /// The span, taken out to be ended when everything it waits for is known.
        mutating func takeSpanIfComplete(heldByTransaction: Bool) -> KafkaProducerTracing.SendSpan? {
            guard result != nil, !heldByTransaction || transactionOutcome != nil else { return nil }
            return span.take()
        }
    }

    /// - Parameters:
    ///   - id: The record's id.
    ///   - record: The record (its topic and chosen partition are kept).
    ///   - span: Its recording send span, if any.
    ///   - inTransaction: Whether it is sent in a transaction, which then holds the span until its outcome.
    ///   - events: The events stream its outcome goes to, if any.
    ///   - metrics: The producer's metrics, when they are on.
    init(
        id: KafkaProducerMessageID,
        record: KafkaProducerRecord,
        span: KafkaProducerTracing.SendSpan?,
        inTransaction: Bool,
        events: BoundedEventStream<KafkaProducerEvent>?,
        metrics: KafkaClientMetrics?
    ) {
        self.id = id
        self.topic = record.topic
        self.partition = record.partition
        self.events = events
        self.metrics = metrics
        self.metricsStart = metrics?.started()
        self.isHeldByTransaction = inTransaction && span != nil
        self.state = Mutex(State(span: span))
    }

    // MARK: - What the backend reports

    /// The record's outcome, from the backend. Only the first call counts.
    func deliver(_ result: Result<KafkaDeliveryReport, KafkaError>) {
        // Moved out under the lock, used outside it.
        var span: KafkaProducerTracing.SendSpan?
        var transactionOutcome: TransactionOutcome?
        var waiter: UnsafeContinuation<KafkaDeliveryReport, any Error>?
        let isFirst = state.withLock { state in
            guard state.result == nil else { return false }
            state.result = result
            span = state.takeSpanIfComplete(heldByTransaction: isHeldByTransaction)
            transactionOutcome = state.transactionOutcome
            waiter = state.waiter.take()
            return true
        }
        guard isFirst else { return }
        span.take()?.end(with: result, transactionOutcome: transactionOutcome)
        if let metrics, let metricsStart { metrics.recordSend(topic: topic, chosenPartition: partition, result, startedAt: metricsStart) }
        if let events {
            switch result {
            case .success(let report): events.yield(.delivered(report))
            case .failure(let error): events.yield(.failed(messageID: id, topic: topic, error: error))
            }
        }
        waiter?.resume(with: result)
    }

    /// The record was refused before the backend took it (invalid, shut down, a cancelled wait for room): the span
    /// and the metrics see the error that the sender gets thrown; nothing else hears of it.
    func refuse(_ error: any Error) {
        let kafkaError = error as? KafkaError ?? KafkaError(code: .invalidRecord, reason: "\(error)")
        var span: KafkaProducerTracing.SendSpan?
        state.withLock { state in
            guard state.result == nil else { return }
            state.result = .failure(kafkaError)
            span = state.span.take()
        }
        span.take()?.end(with: .failure(kafkaError), transactionOutcome: nil)
        if let metrics, let metricsStart {
            metrics.recordSend(topic: topic, chosenPartition: partition, .failure(kafkaError), startedAt: metricsStart, refused: true)
        }
    }

    /// The record's transaction has its outcome (held tickets only).
    func settle(_ outcome: TransactionOutcome) {
        var span: KafkaProducerTracing.SendSpan?
        var result: Result<KafkaDeliveryReport, KafkaError>?
        state.withLock { state in
            state.transactionOutcome = outcome
            span = state.takeSpanIfComplete(heldByTransaction: isHeldByTransaction)
            result = state.result
        }
        guard let result else { return }
        span.take()?.end(with: result, transactionOutcome: outcome)
    }

    // MARK: - The awaiting sender

    /// The record's outcome, awaited once, by its sender (on the sender's executor: no hop).
    ///
    /// When the sender's task is cancelled first, this throws ``KafkaError/Code/cancelled`` at once: the record can't
    /// be taken back from the backend, so it may still be delivered, and its span and metrics still get its outcome.
    nonisolated(nonsending) func outcome() async throws -> KafkaDeliveryReport {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let now: Result<KafkaDeliveryReport, KafkaError>? = state.withLock { state in
                    precondition(state.waiter == nil, "A delivery outcome is awaited once")
                    if let result = state.result { return result }
                    if state.isCancelled { return .failure(cancellation) }
                    state.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> UnsafeContinuation<KafkaDeliveryReport, any Error>? in
                guard state.result == nil else { return nil }
                state.isCancelled = true
                return state.waiter.take()
            }
            waiter?.resume(throwing: cancellation)
        }
    }

    /// Whether the sender is waiting in ``outcome()`` now.
    var isAwaited: Bool { state.withLock { $0.waiter != nil } }

    private var cancellation: KafkaError {
        KafkaError(
            code: .cancelled,
            reason: "The send to '\(topic)' was cancelled while it awaited the broker's acknowledgement; the record was "
                + "handed over and may still be delivered (its send span and metrics get its outcome)"
        )
    }
}
