import Logging
import ServiceLifecycle
import Synchronization
import Tracing

/// Sends records to Kafka.
///
/// Create one per process and share it: it is thread-safe and batches records from every caller. Delivery reports
/// are served from the moment it exists. Put it into a `ServiceGroup` (or call ``run()`` yourself): on graceful
/// shutdown it stops taking records, delivers every queued one within
/// ``KafkaProducerConfiguration/shutdownTimeout``, fails the rest (their senders see the error), and frees librdkafka.
///
/// ```swift
/// let producer = try KafkaProducer(configuration: .init(bootstrapServers: ["localhost:9092"]))
/// let report = try await producer.send(KafkaProducerRecord(topic: "orders", key: "42", value: "{…}"))
/// print(report.partition, report.offset)
/// ```
public final class KafkaProducer: Service, Sendable {
    let backend: any KafkaProducerBackend
    let configuration: KafkaProducerConfiguration
    private let events: BoundedEventStream<KafkaProducerEvent>?
    let lifecycle = ClientLifecycleLock()
    private let nextMessageID = Atomic<UInt64>(0)
    /// The last topic name found valid, so that a producer sending to one topic in a row checks its name once.
    private let lastValidTopic = LastValidTopicName()
    let tracing: KafkaProducerTracing
    private let metrics: KafkaClientMetrics
    let logger: Logger
    /// Transactions: initialized, open, fatal (see ``withTransaction(timeout:_:)``).
    let transactionState = Mutex(ProducerTransactionState())
    /// Whether the producer has a transactional id (read once per record).
    private let isTransactional: Bool
    /// Whether nothing but an awaiting sender ever hears of an enqueued record's outcome: tracing and metrics are
    /// off and the producer has no events stream (``enqueue(_:)`` then hands the record on with nothing else).
    private let isUnobserved: Bool
    /// The trace headers of an untraced record: none (kept here, so that an unobserved record neither builds nor
    /// destroys an empty carrier of its own).
    private let noTraceHeaders = InjectedTraceHeaders()

    /// Creates a producer on the configured backend (librdkafka, or the file queue).
    /// - Parameters:
    ///   - configuration: How to connect and send.
    ///   - logger: Where the producer and librdkafka log.
    /// - Throws: ``KafkaError/Code/configuration`` with librdkafka's message for an unknown property or bad value,
    ///   or for librdkafka without bootstrap servers, or for a ``KafkaProducerConfiguration/maxMessageBytes`` the
    ///   file queue cannot hold; ``KafkaError/Code/fileQueue`` for an unusable queue directory.
    public convenience init(
        configuration: KafkaProducerConfiguration,
        logger: Logger = Logger(label: "TracedKafka.producer")
    ) throws {
        try self.init(configuration: configuration, logger: logger, events: nil)
    }

    /// Creates a producer and the sequence of outcomes of records sent with ``enqueue(_:)``.
    ///
    /// Read the events: at most `maxBufferedEvents` wait unread; past that the oldest unread event is dropped for
    /// each new one (and counted in ``droppedEventCount``), so an unread stream never grows without bound. Use
    /// ``send(_:)`` where every outcome matters to the sender.
    /// - Parameters:
    ///   - configuration: How to connect and send.
    ///   - maxBufferedEvents: How many events wait unread at most (10,000 by default).
    ///   - logger: Where the producer and librdkafka log.
    /// - Returns: The producer and its events, which end when the producer has shut down.
    /// - Throws: ``KafkaError/Code/configuration`` with librdkafka's message for an unknown property or bad value.
    public static func makeProducerWithEvents(
        configuration: KafkaProducerConfiguration,
        maxBufferedEvents: Int = 10_000,
        logger: Logger = Logger(label: "TracedKafka.producer")
    ) throws -> (KafkaProducer, AsyncStream<KafkaProducerEvent>) {
        let (stream, events) = BoundedEventStream<KafkaProducerEvent>.make(limit: maxBufferedEvents)
        let producer = try KafkaProducer(configuration: configuration, logger: logger, events: events)
        return (producer, stream)
    }

    /// How many events of ``makeProducerWithEvents(configuration:maxBufferedEvents:logger:)``'s stream were dropped
    /// because more than its bound waited unread; 0 for a producer made without events.
    public var droppedEventCount: Int { events?.droppedCount ?? 0 }

    private init(
        configuration: KafkaProducerConfiguration,
        logger: Logger,
        events: BoundedEventStream<KafkaProducerEvent>?
    ) throws {
        self.configuration = configuration
        self.events = events
        self.metrics = KafkaClientMetrics(configuration: configuration.metrics, groupID: nil)
        let logger = logger.withClientMetadata(clientID: configuration.clientID, groupID: nil)
        self.logger = logger
        self.isTransactional = configuration.transactionalID != nil
        self.isUnobserved = events == nil && !configuration.tracing.isEnabled && !metrics.isEnabled
        self.tracing = KafkaProducerTracing(
            configuration: configuration.tracing,
            clientID: configuration.clientID,
            server: KafkaServerAddress(backend: configuration.backend, bootstrapServers: configuration.bootstrapServers)
        )
        switch configuration.backend.kind {
        case .librdkafka:
            try KafkaServerAddress.requireBootstrapServers(configuration.bootstrapServers)
            self.backend = try RDProducer(configuration: configuration, logger: logger, metrics: metrics)
        case .fileQueue(let options):
            guard configuration.transactionalID == nil else {
                throw KafkaError(
                    code: .unsupported,
                    reason: "The file queue has no transactions: its logs hold no transaction markers for read_committed "
                        + "readers to skip aborted records by; use a producer without a transactionalID"
                )
            }
            guard configuration.maxMessageBytes <= FQRecordCodec.maxRecordBytes else {
                throw KafkaError(
                    code: .configuration,
                    reason: "maxMessageBytes is \(configuration.maxMessageBytes); the file queue takes records of at most "
                        + "\(FQRecordCodec.maxRecordBytes) bytes"
                )
            }
            self.backend = try FQProducer(options: options, logger: logger)
        }
    }

    deinit {
        // Dropped without a shutdown: deliver what is queued in the background, then free librdkafka.
        let needsClose = lifecycle.acceptsWork
        if needsClose {
            let backend = self.backend, timeout = configuration.shutdownTimeout, events = self.events
            Task {
                await backend.close(flushTimeout: timeout)
                events?.finish()
            }
        }
    }

    /// Sends a record and waits until the broker has acknowledged it.
    ///
    /// With tracing on, the send runs in a PRODUCER span `send {topic}`, a child of the ambient span, whose context
    /// is written into the record's headers; the span ends with the delivery report (a span that is not sampled,
    /// and so records nothing, ends as soon as its context is written).
    /// When the backend's queue is full, this waits for room; it neither fails nor drops the record.
    /// - Parameter record: The record to send.
    /// - Returns: Where the record was stored.
    /// - Throws: ``KafkaError`` with librdkafka's code and text when the record cannot be delivered,
    ///   ``KafkaError/Code/invalidRecord`` for a bad record, ``KafkaError/Code/shutDown`` after shutdown,
    ///   ``KafkaError/Code/notInTransaction`` on a transactional producer (send through its
    ///   ``KafkaTransaction``), ``KafkaError/Code/fatal`` after a fatal error.
    @discardableResult
    public func send(_ record: KafkaProducerRecord) async throws -> KafkaDeliveryReport {
        try await send(record, in: nil)
    }

    /// ``send(_:)``, in a transaction or not (inlined: an async call allocates a frame per record).
    @inline(__always)
    func send(_ record: KafkaProducerRecord, in transaction: KafkaTransaction?) async throws -> KafkaDeliveryReport {
        let id = try admit(record, in: transaction)
        let promise = DeliveryPromise()
        try await hand(record, id: id, in: transaction, onDelivery: { result in promise.fulfil(result) })
        return try await promise.value
    }

    /// Hands an admitted record to the backend, waiting for room when its queue is full.
    @inline(__always)
    private func hand(
        _ record: KafkaProducerRecord,
        id: KafkaProducerMessageID,
        in transaction: KafkaTransaction?,
        onDelivery: DeliveryHandler?
    ) async throws {
        if let full = try start(record, id: id, in: transaction, onDelivery: onDelivery) {
            try await offerWhenRoom(full)
        }
        transaction?.countSent()
    }

    /// A record handed to the backend inside its send span (when tracing is on). The span ends with the delivery
    /// report, before `onDelivery` runs, or at once with the error when the record is refused. Made only when the
    /// queue is full or the record is refused (a class, so that the common "taken" answer is one word).
    @usableFromInline
    final class Send {
        let record: KafkaProducerRecord
        /// The span's context, written after the record's own headers.
        let traceHeaders: InjectedTraceHeaders
        let id: KafkaProducerMessageID
        let span: KafkaProducerTracing.SendSpan?
        /// When the send began, for its duration; `nil` when metrics are off.
        let metricsStart: MetricsInstant?
        let handler: DeliveryHandler?
        /// The span's hold in a transaction, which ends it once the outcome is known too.
        let held: TransactionalSend?

        init(
            record: KafkaProducerRecord,
            traceHeaders: InjectedTraceHeaders,
            id: KafkaProducerMessageID,
            span: KafkaProducerTracing.SendSpan?,
            metricsStart: MetricsInstant?,
            handler: DeliveryHandler?,
            held: TransactionalSend?
        ) {
            self.record = record
            self.traceHeaders = traceHeaders
            self.id = id
            self.span = span
            self.metricsStart = metricsStart
            self.handler = handler
            self.held = held
        }
    }

    /// The record was refused: the span and the metrics see the error that the caller gets; no delivery handler
    /// runs for it (the caller has the error).
    private func fail(_ send: Send, with error: any Error) {
        send.held?.refuse()
        if let span = send.span {
            span.fail(with: error)
            span.end()
        }
        let refusal = error as? KafkaError ?? KafkaError(code: .invalidRecord, reason: "\(error)")
        metrics.recordRefused(send.record, startedAt: send.metricsStart, error: refusal)
    }

    /// Starts the send span and offers the record once: the path of every observed record (an unobserved
    /// ``enqueue(_:)`` skips it) while the queue has room, with no suspension and no copy of the record (unless
    /// tracing drops headers from it). Returns the send when the queue is full (finish it with
    /// ``offerWhenRoom(_:)``), else `nil`.
    private func start(
        _ record: KafkaProducerRecord,
        id: KafkaProducerMessageID,
        in transaction: KafkaTransaction?,
        onDelivery: DeliveryHandler?
    ) throws -> Send? {
        var traceHeaders = InjectedTraceHeaders()
        var keptHeaders: KafkaHeaders?
        let span = tracing.startSend(record, traceHeaders: &traceHeaders, keptHeaders: &keptHeaders)
        guard let keptHeaders else {
            return try offer(record, traceHeaders: traceHeaders, span: span, id: id, in: transaction, onDelivery: onDelivery)
        }
        var changed = record
        changed.headers = keptHeaders
        return try offer(changed, traceHeaders: traceHeaders, span: span, id: id, in: transaction, onDelivery: onDelivery)
    }

    /// Offers a record whose send span has started; the send's state is made only when it is needed (the record
    /// was refused, or the queue is full).
    private func offer(
        _ record: KafkaProducerRecord,
        traceHeaders: InjectedTraceHeaders,
        span: KafkaProducerTracing.SendSpan?,
        id: KafkaProducerMessageID,
        in transaction: KafkaTransaction?,
        onDelivery: DeliveryHandler?
    ) throws -> Send? {
        // Without a span there is nothing for a transaction to hold either.
        if span == nil, !metrics.isEnabled {
            return try offerUnobserved(record, traceHeaders: traceHeaders, id: id, onDelivery: onDelivery)
        }
        let metricsStart = metrics.started()
        let measured = metrics.measuringSend(of: record, startedAt: metricsStart, then: onDelivery)
        let held = span.flatMap { transaction?.hold($0) }
        // No Optional.map here: a closure through a generic (map's result) is reabstracted, one allocation more.
        let handler: DeliveryHandler?
        if let held { handler = Self.holdingSpan(held, then: measured) } else { handler = Self.endingSpan(span, then: measured) }
        let taken: Bool
        do {
            taken = try backend.offer(record, traceHeaders: traceHeaders, id: id, onDelivery: handler)
        } catch {
            fail(Send(record: record, traceHeaders: traceHeaders, id: id, span: span, metricsStart: metricsStart, handler: handler, held: held), with: error)
            throw error
        }
        return taken ? nil : Send(record: record, traceHeaders: traceHeaders, id: id, span: span, metricsStart: metricsStart, handler: handler, held: held)
    }

    /// Offers a record that nothing observes but its own handler: no span, no metrics, no transaction to tell (a
    /// refused record then needs nothing but the error its caller gets).
    @inline(__always)
    private func offerUnobserved(
        _ record: KafkaProducerRecord,
        traceHeaders: InjectedTraceHeaders,
        id: KafkaProducerMessageID,
        onDelivery: DeliveryHandler?
    ) throws -> Send? {
        if try backend.offer(record, traceHeaders: traceHeaders, id: id, onDelivery: onDelivery) { return nil }
        return Send(record: record, traceHeaders: traceHeaders, id: id, span: nil, metricsStart: nil, handler: onDelivery, held: nil)
    }

    /// The queue was full: waits for room and offers again until the backend takes the record.
    @usableFromInline
    func offerWhenRoom(_ send: Send) async throws {
        do {
            while true {
                let token = backend.roomToken
                if try backend.offer(send.record, traceHeaders: send.traceHeaders, id: send.id, onDelivery: send.handler) { return }
                // Nothing is queued yet, so a cancelled sender can give up here.
                try Task.checkCancellation(unsent: send.record)
                await backend.waitForRoom(after: token)
            }
        } catch {
            fail(send, with: error)
            throw error
        }
    }

    /// Sends a record without waiting for the broker; its outcome arrives on the events sequence of
    /// ``makeProducerWithEvents(configuration:maxBufferedEvents:logger:)`` (and nowhere, for a producer made without one).
    ///
    /// When the backend's queue is full, this waits for room; it neither fails nor drops the record.
    /// - Parameter record: The record to send.
    /// - Returns: The identifier its event will carry.
    /// - Throws: ``KafkaError/Code/invalidRecord`` for a bad record, ``KafkaError/Code/shutDown`` after shutdown,
    ///   librdkafka's error when it refuses the record at once, ``KafkaError/Code/notInTransaction`` on a
    ///   transactional producer, ``KafkaError/Code/fatal`` after a fatal error.
    @discardableResult
    @inlinable
    public func enqueue(_ record: KafkaProducerRecord) async throws -> KafkaProducerMessageID {
        // Inlined into the caller, so that a record offered at once costs no async frame: only a full queue
        // makes the caller suspend.
        let (id, waiting) = try enqueueIfRoom(record)
        if let waiting { try await offerWhenRoom(waiting) }
        return id
    }

    /// Admits the record and offers it once; returns its id and, when the queue is full, the send still to offer.
    @usableFromInline
    func enqueueIfRoom(_ record: KafkaProducerRecord) throws -> (KafkaProducerMessageID, Send?) {
        let id = try admit(record, in: nil)
        // No span, no metrics, no events: the record goes to the backend as it is, with nothing to call back. (The
        // same would happen through `start` and `offer`, ~90 instructions per record dearer in the otel-cost profiles.)
        if isUnobserved { return (id, try offerUnobserved(record, traceHeaders: noTraceHeaders, id: id, onDelivery: nil)) }
        return (id, try start(record, id: id, in: nil, onDelivery: events.map { Self.eventHandler($0, id: id, topic: record.topic) }))
    }

    /// ``enqueue(_:)``, in a transaction or not (inlined: an async call allocates a frame per record).
    @inline(__always)
    func enqueue(_ record: KafkaProducerRecord, in transaction: KafkaTransaction?) async throws -> KafkaProducerMessageID {
        let id = try admit(record, in: transaction)
        try await hand(record, id: id, in: transaction, onDelivery: events.map { Self.eventHandler($0, id: id, topic: record.topic) })
        return id
    }

    /// A delivery handler that ends the send span (if any), then calls `next`.
    private static func endingSpan(_ span: KafkaProducerTracing.SendSpan?, then next: DeliveryHandler?) -> DeliveryHandler? {
        guard let span else { return next }
        // A closure that captures the span alone has the span as its context: no allocation per record.
        guard let next else { return { result in KafkaProducerTracing.end(span, with: result) } }
        return { result in
            KafkaProducerTracing.end(span, with: result)
            next(result)
        }
    }

    /// A delivery handler that gives the report to a transaction's held span, then calls `next`.
    private static func holdingSpan(_ held: TransactionalSend, then next: DeliveryHandler?) -> DeliveryHandler {
        { result in
            held.deliver(result)
            next?(result)
        }
    }

    private static func eventHandler(
        _ events: BoundedEventStream<KafkaProducerEvent>,
        id: KafkaProducerMessageID,
        topic: String
    ) -> DeliveryHandler {
        { result in
            switch result {
            case .success(let report): events.yield(.delivered(report))
            case .failure(let error): events.yield(.failed(messageID: id, topic: topic, error: error))
            }
        }
    }

    /// Waits until every record sent so far has been acknowledged or has failed.
    /// - Parameter timeout: How long to wait at most.
    /// - Throws: ``KafkaError/Code/timedOut`` when records are still outstanding, ``KafkaError/Code/shutDown``
    ///   after shutdown.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        try await backend.flush(timeout: timeout)
    }

    /// Runs until graceful shutdown (or until ``triggerGracefulShutdown()`` or task cancellation), then delivers
    /// what is queued within the configured shutdown timeout, fails the rest and frees librdkafka.
    /// - Throws: ``KafkaError/Code/alreadyRunning`` on a second call; the ``KafkaError/Code/fatal`` error that
    ///   stopped the producer, after shutting down.
    public func run() async throws {
        try await lifecycle.run(start: {}, trigger: { [weak self] in self?.triggerGracefulShutdown() }, shutDown: shutDown)
        if let fatal = transactionState.withLock({ $0.fatal }) { throw fatal }
    }

    /// Asks the producer to shut down: new sends fail with ``KafkaError/Code/shutDown``, ``run()`` delivers what is
    /// queued and returns. Without a running ``run()``, the producer shuts down in the background.
    public func triggerGracefulShutdown() {
        lifecycle.triggerShutdown { [self] in await shutDown() }
    }

    @Sendable private func shutDown() async {
        await backend.close(flushTimeout: configuration.shutdownTimeout)
        events?.finish()
    }

    /// Checks a record the same way on both backends, then gives it its id.
    private func admit(_ record: KafkaProducerRecord, in transaction: KafkaTransaction?) throws -> KafkaProducerMessageID {
        if isTransactional {
            if let fatal = transactionState.withLock({ $0.fatal }) { throw fatal }
            guard let transaction else {
                throw KafkaError(
                    code: .notInTransaction,
                    reason: "A transactional producer sends only inside withTransaction, through its KafkaTransaction"
                )
            }
            try transaction.requireOpen()
        }
        guard !record.topic.isEmpty else {
            throw KafkaError(code: .invalidRecord, reason: "The record's topic name is empty")
        }
        // The very string checked last is recognised by its representation (not by `==`, under which a name with
        // U+212A KELVIN SIGN for "K" equals another's).
        if !lastValidTopic.isLast(record.topic) {
            try KafkaTopicName.validate(record.topic, code: .invalidRecord)
            lastValidTopic.remember(record.topic)
        }
        if let partition = record.partition, partition < 0 || partition > Int(Int32.max) {
            throw KafkaError(code: .invalidRecord, reason: "Partition \(partition) is out of range")
        }
        var size = (record.keyBytes?.count ?? 0) + (record.valueBytes?.count ?? 0)
        if !record.headers.isEmpty {
            var keyWithNUL: String?
            record.headers.forEachBorrowed { header in
                size += header.keyByteCount + (header.valueBytes?.count ?? 0)
                // librdkafka passes header keys as C strings, which end at the first NUL.
                if keyWithNUL == nil, header.withKeyBytes({ $0.contains(0) }) { keyWithNUL = header.key }
            }
            if let keyWithNUL {
                throw KafkaError(code: .invalidRecord, reason: "Header key \(String(reflecting: keyWithNUL)) holds a NUL byte")
            }
        }
        guard size <= configuration.maxMessageBytes else {
            throw KafkaError(
                code: .invalidRecord,
                reason: "The record is \(size) bytes (key, value and headers); the producer takes at most "
                    + "\(configuration.maxMessageBytes) (maxMessageBytes)"
            )
        }
        guard lifecycle.acceptsWork else { throw KafkaError.shutDown("The producer") }
        return KafkaProducerMessageID(rawValue: nextMessageID.add(1, ordering: .relaxed).newValue)
    }
}
