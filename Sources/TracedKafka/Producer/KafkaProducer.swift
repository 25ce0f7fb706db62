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
/// import TracedKafka
///
/// let producer = try KafkaProducer(configuration: .init(bootstrapServers: ["localhost:9092"]))
/// let report = try await producer.send(KafkaProducerRecord(topic: "orders", key: "42", value: "{…}"))
/// print(report.partition, report.offset)
/// ```
public final class KafkaProducer: Service, Sendable {
    /// The producer's state: lifecycle, calls in flight, room, transactions.
    let core: ProducerCore
    let backend: any KafkaProducerBackend
    let configuration: KafkaProducerConfiguration
    let events: BoundedEventStream<KafkaProducerEvent>?
    let tracing: KafkaProducerTracing
    /// The producer's metrics, when they are on.
    private let metrics: KafkaClientMetrics?
    /// ``KafkaProducerConfiguration/maxMessageBytes``, or the raw `message.max.bytes`: the largest record taken.
    private let recordSizeLimit: Int
    let logger: Logger

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
        try self.init(configuration: configuration, logger: logger, maxBufferedEvents: nil)
    }

    /// Creates a producer and the sequence of outcomes of records sent with ``enqueue(_:)``.
    ///
    /// Until a reader asks for the first event, at most `maxBufferedEvents` wait unread; past that the oldest
    /// unread event is dropped for each new one (and counted in ``droppedEventCount``), so a stream nobody reads
    /// never grows without bound. Once a reader has started, no event is dropped: ``enqueue(_:)`` waits while
    /// `maxBufferedEvents` outcomes wait unread, as it waits for room in the backend's queue, so a service that
    /// reads every event gets every outcome.
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
        let producer = try KafkaProducer(configuration: configuration, logger: logger, maxBufferedEvents: maxBufferedEvents)
        guard let events = producer.events else { preconditionFailure("A producer made with events has them") }
        return (producer, events.stream)
    }

    /// How many events of ``makeProducerWithEvents(configuration:maxBufferedEvents:logger:)``'s stream were dropped
    /// because more than its bound waited unread before a reader started; 0 for a producer made without events.
    public var droppedEventCount: Int { events?.droppedCount ?? 0 }

    private init(
        configuration: KafkaProducerConfiguration,
        logger: Logger,
        maxBufferedEvents: Int?
    ) throws {
        var configuration = configuration
        let clientID = ClientID.resolve(configuration.clientID, kind: "producer")
        configuration.clientID = clientID
        let server = KafkaServerAddress(backend: configuration.backend, bootstrapServers: configuration.bootstrapServers)
        self.configuration = configuration
        self.recordSizeLimit = configuration.recordSizeLimit
        let core = ProducerCore(isTransactional: configuration.transactionalID != nil)
        self.core = core
        // Senders waiting for the events' reader wait with those waiting for room in the backend's queue.
        let events = maxBufferedEvents.map { BoundedEventStream<KafkaProducerEvent>(limit: $0) { core.roomMade() } }
        self.events = events
        let metrics = KafkaClientMetrics(configuration: configuration.metrics, clientID: clientID, groupID: nil, server: server)
        self.metrics = metrics.isEnabled ? metrics : nil
        let logger = logger.withClientMetadata(clientID: configuration.clientID, groupID: nil)
        self.logger = logger
        self.tracing = KafkaProducerTracing(
            configuration: configuration.tracing,
            clientID: configuration.clientID,
            server: server
        )
        // What goes wrong beside records' outcomes becomes events (a fatal error stops the producer first).
        let errors = ClientErrorReports { [events] error in
            if error.isFatal { core.fail(error, logger: logger) }
            events?.yield(.error(error))
        }
        switch configuration.backend.kind {
        case .librdkafka:
            try KafkaServerAddress.validateBootstrapServers(configuration.bootstrapServers)
            self.backend = try RDProducer(configuration: configuration, logger: logger, metrics: metrics, core: core, errors: errors)
        case .fileQueue(let options):
            guard configuration.transactionalID == nil else {
                throw KafkaError(
                    code: .unsupported,
                    reason: "The file queue has no transactions: its logs hold no transaction markers for read_committed "
                        + "readers to skip aborted records by; use a producer without a transactionalID"
                )
            }
            guard recordSizeLimit <= FQRecordCodec.maxRecordBytes else {
                throw KafkaError(
                    code: .configuration,
                    reason: "maxMessageBytes is \(recordSizeLimit); the file queue takes at most "
                        + "\(FQRecordCodec.maxRecordBytes) bytes"
                )
            }
            self.backend = try FQProducer(options: options, logger: logger, core: core, errors: errors)
        }
        // Weak: the producer's deinit closes the backend of a producer nobody holds.
        core.attachShutDown { [weak self] in await self?.shutDown() }
    }

    deinit {
        // Dropped without a shutdown (nothing is sending: every call holds the producer): deliver what is queued in
        // the background, then free the backend.
        guard core.machine.withLock({ $0.backend == .open }) else { return }
        let core = self.core, backend = self.backend, timeout = configuration.shutdownTimeout, events = self.events
        Task {
            await core.close { abortTransaction in await backend.close(flushTimeout: timeout, abortTransaction: abortTransaction) }
            events?.finish()
        }
    }

    /// Sends a record and waits until the broker has acknowledged it.
    ///
    /// With tracing on, the send runs in a PRODUCER span `send {topic}`, a child of the ambient span, whose context
    /// is written into the record's headers; the span ends with the delivery report (a span that is not sampled,
    /// and so records nothing, ends as soon as its context is written).
    /// When the backend's queue is full, this waits for room; it neither fails nor drops the record.
    ///
    /// Cancellation: a task that is cancelled before the record is handed over (already cancelled when it calls
    /// this, or while it waits for room) sends nothing and gets ``KafkaError/Code/cancelled``. A task cancelled
    /// while it awaits the acknowledgement gets ``KafkaError/Code/cancelled`` at once, but the record can't be taken
    /// back: it may still be delivered, and its span and metrics still get the broker's outcome.
    /// - Parameter record: The record to send.
    /// - Returns: Where the record was stored.
    /// - Throws: ``KafkaError`` with librdkafka's code and text when the record cannot be delivered,
    ///   ``KafkaError/Code/invalidRecord`` for a bad record, ``KafkaError/Code/cancelled`` when the task is
    ///   cancelled, ``KafkaError/Code/shutDown`` after shutdown, ``KafkaError/Code/notInTransaction`` on a
    ///   transactional producer (send through its ``KafkaTransaction``), ``KafkaError/Code/fatal`` after a fatal
    ///   error.
    @discardableResult
    nonisolated(nonsending) public func send(_ record: KafkaProducerRecord) async throws -> KafkaDeliveryReport {
        try await send(record, in: nil)
    }

    /// ``send(_:)``, in a transaction or not (inlined: an async call costs a frame per record).
    @inline(__always)
    nonisolated(nonsending) func send(_ record: KafkaProducerRecord, in transaction: UInt64?) async throws -> KafkaDeliveryReport {
        try Task.checkCancellation(unsent: record)
        let handed = try handOver(record, in: transaction, awaited: true)
        if let waiting = handed.waiting { try await offerWhenRoom(waiting) }
        guard let ticket = handed.ticket else { preconditionFailure("An awaited send has a delivery ticket") }
        return try await ticket.outcome()
    }

    /// Sends a record without waiting for the broker; its outcome arrives on the events sequence of
    /// ``makeProducerWithEvents(configuration:maxBufferedEvents:logger:)`` (and nowhere, for a producer made without one).
    ///
    /// When the backend's queue is full, or a reader of the events stream has `maxBufferedEvents` events still to
    /// read, this waits for room; it neither fails nor drops the record. A task cancelled while it waits gets
    /// ``KafkaError/Code/cancelled`` and the record is not sent.
    /// - Parameter record: The record to send.
    /// - Returns: The identifier its event will carry.
    /// - Throws: ``KafkaError/Code/invalidRecord`` for a bad record, ``KafkaError/Code/shutDown`` after shutdown,
    ///   librdkafka's error when it refuses the record at once, ``KafkaError/Code/cancelled`` when the task is
    ///   cancelled while it waits for room, ``KafkaError/Code/notInTransaction`` on a transactional producer,
    ///   ``KafkaError/Code/fatal`` after a fatal error.
    @discardableResult
    @inlinable
    public func enqueue(_ record: KafkaProducerRecord) async throws -> KafkaProducerMessageID {
        // Inlined into the caller, so that a record the backend takes at once costs no async call: only a full
        // queue (or a full events stream that is being read) makes the caller suspend.
        if eventsAreFull { try await waitForEventRoom() }
        let handed = try handOver(record, in: nil, awaited: false)
        if let waiting = handed.waiting { try await offerWhenRoom(waiting) }
        return handed.id
    }

    /// ``enqueue(_:)`` in a transaction.
    nonisolated(nonsending) func enqueue(_ record: KafkaProducerRecord, in transaction: UInt64) async throws -> KafkaProducerMessageID {
        if eventsAreFull { try await waitForEventRoom() }
        let handed = try handOver(record, in: transaction, awaited: false)
        if let waiting = handed.waiting { try await offerWhenRoom(waiting) }
        return handed.id
    }

    // MARK: - One record's way to the backend

    /// Whether an enqueue must wait for the events stream's reader first: once a reader has started, the stream
    /// drops no outcome, so a sender waits while its bound of events waits unread.
    @usableFromInline var eventsAreFull: Bool { events?.isFull ?? false }

    /// Waits until the events stream's reader has made room, as a sender waits for room in the backend's queue.
    /// - Throws: ``KafkaError/Code/cancelled`` when the task is cancelled first (the record is not sent); the fatal
    ///   error, or ``KafkaError/Code/shutDown`` once shutdown has begun.
    @usableFromInline
    nonisolated(nonsending) func waitForEventRoom() async throws {
        while true {
            // Read before the check: room the reader makes after it ends the wait at once.
            let generation = core.roomGeneration
            guard eventsAreFull else { return }
            if Task.isCancelled {
                throw KafkaError(code: .cancelled, reason: "The send was cancelled while it waited for the events stream's reader; it was not sent")
            }
            try core.machine.withLock { try $0.requireRunning() }
            await core.waitForRoom(after: generation)
        }
    }

    /// A record handed over (or waiting for room), its id and its ticket.
    @usableFromInline
    struct Handed {
        @usableFromInline let id: KafkaProducerMessageID
        /// The ticket, when somebody observes the record's outcome.
        @usableFromInline let ticket: DeliveryTicket?
        /// The record, when the backend's queue was full: finish with ``offerWhenRoom(_:)``.
        @usableFromInline let waiting: Waiting?
    }

    /// An admitted record that found the backend's queue full, with what its offers need.
    @usableFromInline
    final class Waiting {
        let record: KafkaProducerRecord
        let traceHeaders: TrailingHeaders
        let ticket: DeliveryTicket?
        let transaction: UInt64?

        init(record: KafkaProducerRecord, traceHeaders: TrailingHeaders, ticket: DeliveryTicket?, transaction: UInt64?) {
            self.record = record
            self.traceHeaders = traceHeaders
            self.ticket = ticket
            self.transaction = transaction
        }
    }

    /// Checks the record, admits it, starts its send span and offers it to the backend once, without waiting.
    /// - Parameters:
    ///   - record: The record.
    ///   - transaction: The number of the transaction it is sent in, if any.
    ///   - awaited: Whether its sender awaits its outcome (it then always has a ticket).
    /// - Throws: What admission or the backend throws; the ticket's span and metrics then see the error.
    @usableFromInline
    func handOver(_ record: KafkaProducerRecord, in transaction: UInt64?, awaited: Bool) throws -> Handed {
        try validate(record)
        let id = try core.admit(transaction: transaction)
        var traceHeaders = TrailingHeaders()
        var keptHeaders: KafkaHeaders?
        // `nil` with tracing off: the record then goes as it is, with no trace headers.
        let span = tracing.startSend(record, traceHeaders: &traceHeaders, keptHeaders: &keptHeaders)
        let observed = awaited || span != nil || metrics != nil || events != nil
        let ticket = observed
            ? DeliveryTicket(
                id: id, record: record, span: span, inTransaction: transaction != nil, events: awaited ? nil : events, metrics: metrics
            )
            : nil
        guard let keptHeaders else {
            return try offerFirst(record, traceHeaders: traceHeaders, id: id, ticket: ticket, in: transaction)
        }
        // Tracing dropped stale trace headers from the record: it is sent with the ones it kept.
        var changed = record
        changed.headers = keptHeaders
        return try offerFirst(changed, traceHeaders: traceHeaders, id: id, ticket: ticket, in: transaction)
    }

    /// The first offer of an admitted record (counted by the admission); the record waits when the queue is full.
    private func offerFirst(
        _ record: KafkaProducerRecord,
        traceHeaders: TrailingHeaders,
        id: KafkaProducerMessageID,
        ticket: DeliveryTicket?,
        in transaction: UInt64?
    ) throws -> Handed {
        do {
            let taken = try offerOnce(record, traceHeaders: traceHeaders, ticket: ticket, in: transaction)
            let waiting = taken ? nil : Waiting(record: record, traceHeaders: traceHeaders, ticket: ticket, transaction: transaction)
            return Handed(id: id, ticket: ticket, waiting: waiting)
        } catch {
            ticket?.refuse(error)
            throw error
        }
    }

    /// Offers a record that found the queue full until the backend takes it, waiting for room in between; each
    /// offer is counted again.
    /// - Throws: What the backend throws, ``KafkaError/Code/shutDown`` when the producer shut down while the record
    ///   waited, ``KafkaError/Code/cancelled`` when the task was cancelled while it waited; the ticket's span and
    ///   metrics then see the error.
    @usableFromInline
    nonisolated(nonsending) func offerWhenRoom(_ waiting: Waiting) async throws {
        do {
            while true {
                // Nothing is queued yet, so a cancelled sender can give up here.
                try Task.checkCancellation(unsent: waiting.record)
                let generation = core.roomGeneration
                try core.beginCall(transaction: waiting.transaction)
                if try offerOnce(waiting.record, traceHeaders: waiting.traceHeaders, ticket: waiting.ticket, in: waiting.transaction) {
                    return
                }
                await core.waitForRoom(after: generation)
            }
        } catch {
            waiting.ticket?.refuse(error)
            throw error
        }
    }

    /// One counted call into the backend: `true` when it took the record.
    private func offerOnce(
        _ record: KafkaProducerRecord,
        traceHeaders: TrailingHeaders,
        ticket: DeliveryTicket?,
        in transaction: UInt64?
    ) throws -> Bool {
        let taken: Bool
        do {
            taken = try backend.offer(record, trailingHeaders: traceHeaders, ticket: ticket)
        } catch {
            core.callEnded()
            throw error
        }
        core.callEnded()
        // A transaction counts the records it took and holds the spans of its traced ones until its outcome.
        if taken, let transaction { core.taken(in: transaction, ticket: ticket?.isHeldByTransaction == true ? ticket : nil) }
        return taken
    }

    /// Checks a record the same way on both backends: Kafka's topic-name rules, the partition's range, header keys
    /// librdkafka can pass, and ``KafkaProducerConfiguration/maxMessageBytes``.
    private func validate(_ record: KafkaProducerRecord) throws {
        guard !record.topic.isEmpty else {
            throw KafkaError(code: .invalidRecord, reason: "The record's topic name is empty")
        }
        try KafkaTopicName.validate(record.topic, code: .invalidRecord)
        if let partition = record.partition, partition < 0 || partition > Int(Int32.max) {
            throw KafkaError(code: .invalidRecord, reason: "Partition \(partition) is out of range")
        }
        if let timestamp = record.timestamp, record.timestampMilliseconds == nil {
            throw KafkaError(
                code: .invalidRecord,
                reason: "Timestamp \(timestamp.timeIntervalSince1970) s after 1970 is out of range: Kafka keeps milliseconds since 1970, never negative, as a 64-bit count"
            )
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
        guard size <= recordSizeLimit else {
            throw KafkaError(
                code: .invalidRecord,
                reason: "The record is \(size) bytes (key, value and headers); the producer takes at most "
                    + "\(recordSizeLimit) (maxMessageBytes, or the raw message.max.bytes)"
            )
        }
    }

    /// Waits until every record sent so far has been acknowledged or has failed.
    ///
    /// A task cancelled while it waits gets ``KafkaError/Code/cancelled`` promptly; the records go on being delivered.
    /// - Parameter timeout: How long to wait at most.
    /// - Throws: ``KafkaError/Code/timedOut`` when records are still outstanding, ``KafkaError/Code/cancelled`` when
    ///   the task is cancelled, ``KafkaError/Code/shutDown`` when called once shutdown has begun, on either backend
    ///   (shutdown delivers what is queued itself), ``KafkaError/Code/fatal`` after a fatal error.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        try core.machine.withLock { try $0.requireRunning() }
        try await backend.flush(timeout: timeout)
    }

    /// Runs until graceful shutdown (or until ``triggerGracefulShutdown()`` or task cancellation), then delivers
    /// what is queued within the configured shutdown timeout, fails the rest and frees librdkafka.
    /// - Throws: ``KafkaError/Code/alreadyRunning`` on a second call; the ``KafkaError/Code/fatal`` error that
    ///   stopped the producer, after shutting down.
    public func run() async throws {
        try await core.run(start: {}, trigger: { [weak self] in self?.triggerGracefulShutdown() }, shutDown: shutDown)
        if let fatal = core.machine.withLock({ $0.fatal }) { throw fatal }
    }

    /// Asks the producer to shut down: new sends fail with ``KafkaError/Code/shutDown``, ``run()`` delivers what is
    /// queued and returns. Without a running ``run()``, the producer shuts down in the background.
    public func triggerGracefulShutdown() {
        core.triggerShutdown { [self] in await shutDown() }
    }

    @Sendable private func shutDown() async {
        let backend = self.backend, timeout = configuration.shutdownTimeout
        await core.close { abortTransaction in await backend.close(flushTimeout: timeout, abortTransaction: abortTransaction) }
        events?.finish()
    }
}
