/// What a producer backend reports when a record's fate is known.
typealias DeliveryHandler = @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

/// The boundary under ``KafkaProducer``: what a backend (librdkafka, or the local file queue) must do.
/// The public API and the tracing layer above it never know which backend runs.
protocol KafkaProducerBackend: AnyObject, Sendable {
    /// Hands a record to the backend. Waits, without blocking a thread, while the backend's queue is full.
    /// Once it returns, `onDelivery` (if any) is called exactly once, from any thread.
    /// - Throws: ``KafkaError`` when the record is refused (invalid, or the backend is shut down); then
    ///   `onDelivery` is never called.
    func produce(_ record: KafkaProducerRecord, id: KafkaProducerMessageID, onDelivery: DeliveryHandler?) async throws

    /// Waits until every record handed over so far has its outcome, or the timeout passes.
    /// - Throws: ``KafkaError/Code/timedOut`` when records are still outstanding at the timeout.
    func flush(timeout: Duration) async throws

    /// Delivers what it can within `flushTimeout`, fails every record left (their handlers are called with an
    /// error), and frees the backend's resources. Safe to call more than once.
    func close(flushTimeout: Duration) async
}
