import Logging
import ServiceLifecycle
import Synchronization

/// Reads records from Kafka topics as a member of a consumer group.
///
/// Iterate ``messages`` in one task; put the consumer into a `ServiceGroup` (or call ``run()``) in another. On
/// graceful shutdown the sequence ends, the message being handled is allowed to finish (up to
/// ``KafkaConsumerConfiguration/shutdownTimeout``), what was handled is committed, and the consumer leaves its
/// group cleanly.
///
/// ```swift
/// let consumer = try KafkaConsumer(configuration: .init(
///     bootstrapServers: ["localhost:9092"], groupID: "billing", topics: ["orders"]))
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await consumer.run() }
///     for try await message in consumer.messages {
///         print(message.valueString ?? "<tombstone>")
///     }
/// }
/// ```
public final class KafkaConsumer: Service, Sendable {
    private let backend: any KafkaConsumerBackend
    private let configuration: KafkaConsumerConfiguration
    private let buffer: ConsumerMessageBuffer
    private let lifecycle = Mutex(ClientLifecycle())
    private let iteration = Mutex(IterationState())
    private let tracing: KafkaConsumerTracing
    private let metrics: KafkaClientMetrics

    /// Whether fetching has begun, and whether a message is out with the handler (returned by `next()`, not yet
    /// followed by another `next()`).
    private struct IterationState {
        var started = false
        var iteratorCreated = false
        var messageOut = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Creates a consumer on the configured backend (librdkafka, or the file queue) and subscribes it to the
    /// configured topics.
    /// - Parameters:
    ///   - configuration: How to connect, subscribe and commit.
    ///   - logger: Where the consumer and librdkafka log.
    /// - Throws: ``KafkaError/Code/noTopics`` without topics; ``KafkaError/Code/configuration`` with librdkafka's
    ///   message for an unknown property or bad value, or for librdkafka without bootstrap servers;
    ///   ``KafkaError/Code/fileQueue`` for an unusable queue directory.
    public convenience init(
        configuration: KafkaConsumerConfiguration,
        logger: Logger = Logger(label: "TracedKafka.consumer")
    ) throws {
        try self.init(configuration: configuration, logger: logger, events: nil)
    }

    /// Creates a consumer and the sequence of its events (partition assignments and revocations, errors).
    /// - Parameters:
    ///   - configuration: How to connect, subscribe and commit.
    ///   - logger: Where the consumer and librdkafka log.
    /// - Returns: The consumer and its events, which end when the consumer has shut down.
    /// - Throws: as ``init(configuration:logger:)``.
    public static func makeConsumerWithEvents(
        configuration: KafkaConsumerConfiguration,
        logger: Logger = Logger(label: "TracedKafka.consumer")
    ) throws -> (KafkaConsumer, AsyncStream<KafkaConsumerEvent>) {
        let (stream, continuation) = AsyncStream.makeStream(
            of: KafkaConsumerEvent.self,
            bufferingPolicy: .bufferingNewest(1_000)
        )
        return (try KafkaConsumer(configuration: configuration, logger: logger, events: continuation), stream)
    }

    private init(
        configuration: KafkaConsumerConfiguration,
        logger: Logger,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?
    ) throws {
        let topics = configuration.topics.filter { !$0.isEmpty }
        guard !topics.isEmpty, topics.count == configuration.topics.count else {
            throw KafkaError(
                code: .noTopics,
                reason: configuration.topics.isEmpty
                    ? "The consumer configuration names no topic to subscribe to"
                    : "The consumer configuration names an empty topic"
            )
        }
        for topic in topics { try KafkaTopicName.validate(topic, code: .configuration) }
        self.configuration = configuration
        self.metrics = KafkaClientMetrics(configuration: configuration.metrics, groupID: configuration.groupID)
        let logger = logger.withClientMetadata(clientID: configuration.clientID, groupID: configuration.groupID)
        self.tracing = KafkaConsumerTracing(
            configuration: configuration.tracing,
            groupID: configuration.groupID,
            clientID: configuration.clientID,
            server: KafkaServerAddress(backend: configuration.backend, bootstrapServers: configuration.bootstrapServers)
        )
        self.buffer = ConsumerMessageBuffer(capacity: configuration.maxBufferedMessages, byteCapacity: configuration.maxBufferedBytes)
        switch configuration.backend {
        case .librdkafka:
            try KafkaServerAddress.requireBootstrapServers(configuration.bootstrapServers)
            self.backend = try RDConsumer(
                configuration: configuration, buffer: buffer, logger: logger, events: events, metrics: metrics
            )
        case .fileQueue(let options):
            self.backend = try FQConsumer(
                configuration: configuration, options: options, buffer: buffer, logger: logger, events: events
            )
        }
    }

    deinit {
        if lifecycle.withLock({ $0.acceptsWork }) {
            let backend = self.backend
            Task { await backend.close() }
        }
    }

    /// The consumed messages, in order per partition. Iterate it from one task only.
    ///
    /// A message counts as handled when the loop asks for the next message (or the sequence ends); in commit mode
    /// ``KafkaConsumerConfiguration/CommitMode/afterHandled(interval:)`` only handled messages are committed.
    /// Leaving the loop with `break` leaves the last message unhandled: it is delivered again later.
    /// The sequence ends after graceful shutdown; it throws a ``KafkaError`` on a fatal consumer error.
    public var messages: KafkaConsumerMessages { KafkaConsumerMessages(consumer: self) }

    /// Commits the position after a message and waits for the group coordinator to accept it.
    /// - Parameter message: The message handled last in its partition.
    /// - Throws: ``KafkaError`` with librdkafka's code when the commit fails, ``KafkaError/Code/shutDown`` after
    ///   shutdown.
    public func commit(_ message: KafkaConsumerMessage) async throws {
        try await commit(offsets: [message.nextOffset])
    }

    /// Commits positions and waits for the group coordinator to accept them.
    /// - Parameter offsets: For each partition, the offset of the next message to read.
    /// - Throws: ``KafkaError`` with librdkafka's code when the commit fails, ``KafkaError/Code/shutDown`` after
    ///   shutdown.
    public func commit(offsets: [KafkaTopicPartitionOffset]) async throws {
        for offset in offsets {
            try KafkaTopicName.validate(offset.topic, code: .unknownPartition)
            guard offset.partition >= 0, offset.partition <= Int(Int32.max) else {
                throw KafkaError(code: .unknownPartition, reason: "Cannot commit \(offset.topic)[\(offset.partition)]: no such partition")
            }
            guard offset.offset >= 0 else {
                throw KafkaError(code: .invalidOffset, reason: "Cannot commit offset \(offset.offset) of \(offset.topic)[\(offset.partition)]")
            }
        }
        try await backend.commit(offsets)
    }

    /// Stops fetching from partitions until ``resume(_:)``. Messages already buffered are still delivered.
    /// - Parameter partitions: Partitions assigned to this consumer.
    /// - Throws: ``KafkaError`` when librdkafka refuses, ``KafkaError/Code/shutDown`` after shutdown.
    public func pause(_ partitions: [KafkaTopicPartition]) throws {
        try backend.pause(partitions)
    }

    /// Resumes fetching from paused partitions.
    /// - Parameter partitions: Partitions paused with ``pause(_:)``.
    /// - Throws: ``KafkaError`` when librdkafka refuses, ``KafkaError/Code/shutDown`` after shutdown.
    public func resume(_ partitions: [KafkaTopicPartition]) throws {
        try backend.resume(partitions)
    }

    /// Fetches until graceful shutdown (or ``triggerGracefulShutdown()`` or task cancellation); then ends
    /// ``messages``, waits for the message being handled, commits what was handled and leaves the group.
    /// - Throws: ``KafkaError/Code/alreadyRunning`` on a second call.
    public func run() async throws {
        try await run(nil)
    }

    /// `run()`, for an action already taken from the lifecycle (or `nil` to take it now).
    private func run(_ action: ClientLifecycle.RunAction?) async throws {
        try await lifecycle.run(
            action,
            start: startFetching,
            trigger: { [weak self] in self?.triggerGracefulShutdown() },
            shutDown: shutDown
        )
    }

    /// Asks the consumer to shut down: ``messages`` ends after the message being handled, ``run()`` commits and
    /// leaves the group. Without a running ``run()``, the consumer shuts down in the background.
    public func triggerGracefulShutdown() {
        lifecycle.triggerShutdown { [self] in await shutDown() }
    }

    @Sendable private func shutDown() async {
        buffer.finish()
        // Detached: when run() was cancelled, the wait must still last until the handler is done (or times out).
        let timeout = configuration.shutdownTimeout
        await Task.detached { await self.waitUntilHandlerIdle(timeout: timeout) }.value
        await backend.close()
    }

    /// How many messages and bytes are read ahead now (for tests).
    var buffered: (count: Int, bytes: Int) { buffer.contents() }

    // MARK: - Iteration

    func startFetching() {
        let start = iteration.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        if start { backend.start() }
    }

    /// Called by the iterator: the previous message (if any) is handled; returns the next one.
    func next(after handled: KafkaConsumerMessage?) async throws -> KafkaConsumerMessage? {
        try await nextBatch(after: handled.map { [$0] } ?? [], max: 1)?.first
    }

    /// The handled messages are marked; returns the next message and up to `max - 1` more already buffered, with
    /// their extracted trace context, or `nil` after shutdown.
    func nextBatch(after handled: [KafkaConsumerMessage], max: Int) async throws -> [KafkaConsumerMessage]? {
        if case .afterHandled = configuration.commitMode { backend.storeOffsets(after: handled) }
        // Out before taking, so a shutdown that starts meanwhile waits for whatever this call hands over.
        setMessageOut(true)
        guard var batch = try await takeBatch(max: max) else {
            setMessageOut(false)
            return nil
        }
        if case .automatic = configuration.commitMode { backend.storeOffsets(after: batch) }
        metrics.recordConsumed(batch)
        guard tracing.extractsContext else { return batch }
        // Extracted here, in the consuming task, so a tracer bound with withTracer is the one used. In place: the
        // batch was just made, so this writes into its storage instead of copying it.
        for index in batch.indices {
            batch[index].traceContext = tracing.extractContext(from: batch[index])
        }
        return batch
    }

    /// The next message and up to `max - 1` more already buffered; `nil` after shutdown. Throws only when the
    /// waiting task is cancelled or the consumer failed.
    private func takeBatch(max: Int) async throws -> [KafkaConsumerMessage]? {
        do {
            guard lifecycle.withLock({ $0.acceptsWork }) else { return nil }
            startFetching()
            guard let first = try await buffer.next() else { return nil }
            guard max > 1 else { return [first] }
            var batch = [first]
            batch.append(contentsOf: buffer.takeAvailable(max - 1))
            return batch
        } catch {
            setMessageOut(false)
            throw error
        }
    }

    // MARK: - Handler API

    /// Runs the consumer and handles each message with `handler`, until graceful shutdown.
    ///
    /// With tracing on, each call runs inside a CONSUMER span `process {topic}` that is
    /// `InstrumentationContext.current` for the handler, so whatever it sends or calls continues the trace. The span
    /// is a child of the producer's span (or of the ambient span, if there is one) and links to the producer's
    /// context; with ``KafkaTracingConfiguration/ConsumerParent/linkOnly`` it is a new root with that link.
    /// A message counts as handled (and may be committed) when its handler returns. When the handler throws, the
    /// span records the error and ``KafkaConsumerConfiguration/handlerFailure`` decides what follows.
    ///
    /// Use this instead of ``run()`` plus ``messages``, not beside them.
    /// - Parameter handler: Handles one message.
    /// - Throws: The handler's error under the `stop` and `retry` policies (after committing what was handled
    ///   before it), or ``KafkaError/Code/alreadyRunning``.
    public func run(_ handler: @escaping @Sendable (KafkaConsumerMessage) async throws -> Void) async throws {
        try await handle(batchSize: 1) { messages in
            try await self.tracing.withProcessSpan(messages[0], handler)
        }
    }

    /// Runs the consumer and handles messages in batches with `handler`, until graceful shutdown.
    ///
    /// A batch is the next message plus whatever is already buffered, up to `maxMessages`. With tracing on, each
    /// call runs inside one CONSUMER span `process {topic}` (child of the ambient span, else a root) with
    /// `messaging.batch.message_count` and one link per message to its producer's context, each link carrying the
    /// message's partition and offset. The whole batch counts as handled when the handler returns.
    /// - Parameters:
    ///   - maxMessages: The largest batch.
    ///   - handler: Handles one batch.
    /// - Throws: as ``run(_:)``.
    public func runBatches(
        maxMessages: Int = 500,
        _ handler: @escaping @Sendable ([KafkaConsumerMessage]) async throws -> Void
    ) async throws {
        try await handle(batchSize: max(1, maxMessages)) { messages in
            try await self.tracing.withBatchSpan(messages, handler)
        }
    }

    private func handle(
        batchSize: Int,
        _ process: @escaping @Sendable ([KafkaConsumerMessage]) async throws -> Void
    ) async throws {
        guard registerIterator() else { throw Self.secondReader }
        // The transition to running happens here, before anything is spawned, so a second run() fails at once.
        let action = try lifecycle.withLock { try $0.run() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run(action) }
            do {
                var handled: [KafkaConsumerMessage] = []
                while let batch = try await nextBatch(after: handled, max: batchSize) {
                    handled = []
                    try await processWithPolicy(batch, process)
                    handled = batch
                }
            } catch {
                // The failed batch is not handled: nothing of it is committed.
                iteratorEnded()
                triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            try await group.waitForAll()
        }
    }

    private func processWithPolicy(
        _ batch: [KafkaConsumerMessage],
        _ process: @Sendable ([KafkaConsumerMessage]) async throws -> Void
    ) async throws {
        var attempt = 1
        while true {
            // Each attempt is one handler call: its duration and outcome are recorded.
            let started = metrics.started()
            do {
                try await process(batch)
                metrics.recordProcess(batch, startedAt: started, error: nil)
                return
            } catch {
                metrics.recordProcess(batch, startedAt: started, error: error)
                if error is CancellationError || Task.isCancelled { throw error }
                switch configuration.handlerFailure {
                case .skip:
                    return
                case .stop:
                    throw error
                case .retry(let attempts, let backoff):
                    guard attempt < attempts else { throw error }
                    attempt += 1
                    try await Task.sleep(for: backoff)
                }
            }
        }
    }

    /// Called when an iterator is dropped: whatever it had out is no longer being handled.
    func iteratorEnded() { setMessageOut(false) }

    /// Registers the one reader of the messages; returns `false` when there already is one.
    func registerIterator() -> Bool {
        iteration.withLock { state in
            defer { state.iteratorCreated = true }
            return !state.iteratorCreated
        }
    }

    static let secondReader = KafkaError(
        code: .alreadyRunning,
        reason: "The consumer's messages are already being read (messages is iterated once, or run(_:) is running)"
    )

    private func setMessageOut(_ out: Bool) {
        let waiters = iteration.withLock { state in
            state.messageOut = out
            guard !out else { return [CheckedContinuation<Void, Never>]() }
            defer { state.idleWaiters = [] }
            return state.idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func waitUntilHandlerIdle(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let idle = self.iteration.withLock { state in
                        guard state.messageOut else { return true }
                        state.idleWaiters.append(continuation)
                        return false
                    }
                    if idle { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // The sleeping child ends on cancellation; release a still-parked waiter.
            self.setMessageOut(false)
        }
    }
}

/// The messages of a ``KafkaConsumer``, as an `AsyncSequence`. Iterate it once, from one task.
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
    /// A consumed message.
    public typealias Element = KafkaConsumerMessage

    let consumer: KafkaConsumer

    /// Makes the one iterator of this consumer. A second iterator (or one made while ``KafkaConsumer/run(_:)``
    /// reads the messages) throws ``KafkaError/Code/alreadyRunning`` from its first `next()`.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(box: IteratorBox(consumer: consumer, isReader: consumer.registerIterator()))
    }

    /// Iterates the messages; asking for the next message marks the previous one handled.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let box: IteratorBox

        /// The next message, or `nil` after shutdown.
        /// - Throws: ``KafkaError`` on a fatal consumer error; `CancellationError` when the task is cancelled.
        public mutating func next() async throws -> KafkaConsumerMessage? {
            try await box.next()
        }
    }

    /// Tracks the message out with the handler; tells the consumer when the iterator is gone.
    final class IteratorBox: @unchecked Sendable {
        private let consumer: KafkaConsumer
        private let isReader: Bool
        // Touched only by the iterating task.
        private var outstanding: KafkaConsumerMessage?

        init(consumer: KafkaConsumer, isReader: Bool) {
            self.consumer = consumer
            self.isReader = isReader
        }

        deinit { if isReader { consumer.iteratorEnded() } }

        func next() async throws -> KafkaConsumerMessage? {
            guard isReader else { throw KafkaConsumer.secondReader }
            let handled = outstanding
            outstanding = nil
            outstanding = try await consumer.next(after: handled)
            return outstanding
        }
    }
}
