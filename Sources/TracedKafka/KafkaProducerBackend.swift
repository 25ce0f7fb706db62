/// What a producer backend reports when a record's fate is known.
typealias DeliveryHandler = @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

/// The boundary under ``KafkaProducer``: what a backend (librdkafka, or the local file queue) must do.
/// The public API and the tracing layer above it never know which backend runs.
protocol KafkaProducerBackend: AnyObject, Sendable {
    /// Hands a record to the backend if its queue has room, without waiting: the per-record fast path.
    /// - Returns: `true` when the backend took the record: `onDelivery` (if any) will be called exactly once, from
    ///   any thread. `false` when the queue is full: nothing was kept; wait with ``waitForRoom(after:)``.
    /// - Throws: ``KafkaError`` when the record is refused (invalid, or the backend is shut down); then
    ///   `onDelivery` is never called.
    func offer(_ record: KafkaProducerRecord, id: KafkaProducerMessageID, onDelivery: DeliveryHandler?) throws -> Bool

    /// Read before an ``offer(_:id:onDelivery:)`` that may find the queue full, and passed to
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
}

extension KafkaProducerBackend {
    /// For a backend whose ``waitForRoom(after:)`` checks for room under the same lock as
    /// ``offer(_:id:onDelivery:)`` (the file queue): no token is needed.
    var roomToken: UInt64 { 0 }
}
