import Logging
import ServiceLifecycle
import Synchronization

/// Reads records from Kafka topics as a member of a consumer group, or from given partitions.
///
/// Iterate ``messages`` in one task; put the consumer into a `ServiceGroup` (or call ``run()``) in another — or
/// hand a handler to ``run(_:)``, which does both. On graceful shutdown the messages end, the message being handled
/// is allowed to finish (up to ``KafkaConsumerConfiguration/shutdownTimeout``), what was handled is committed, and
/// the consumer leaves its group cleanly.
///
/// ```swift
/// import TracedKafka
///
/// let consumer = try KafkaConsumer(configuration: .init(
///     bootstrapServers: ["localhost:9092"], groupID: "billing", topics: ["orders"]))
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await consumer.run() }
///     for try await message in consumer.messages {
///         print(message.valueString ?? "<tombstone>")
///     }
/// }
/// ```
///
/// Its whole state — lifecycle, owned partitions, read-ahead buffer, the message out with the handler, stored
/// offsets, the fetcher — is one state machine under one lock; the backend (librdkafka, or the file queue) is I/O.
public final class KafkaConsumer: Service, Sendable {
    private let backend: any KafkaConsumerBackend
    private let configuration: KafkaConsumerConfiguration
    let core: ConsumerCore
    let tracing: KafkaConsumerTracing
    private let metrics: KafkaClientMetrics

    /// Creates a consumer on the configured backend (librdkafka, or the file queue) and subscribes it to the
    /// configured topics (or assigns it the configured partitions). A group member made without topics subscribes to
    /// nothing until ``subscribe(topics:)``.
    /// - Parameters:
    ///   - configuration: How to connect, what to read and how to commit.
    ///   - logger: Where the consumer and librdkafka log.
    /// - Throws: ``KafkaError/Code/noTopics`` without a group, topics or partitions, or for an empty topic name;
    ///   ``KafkaError/Code/configuration`` with
    ///   librdkafka's message for an unknown property or bad value, for librdkafka without bootstrap servers, or for
    ///   what ``KafkaConsumerConfiguration`` describes as invalid; ``KafkaError/Code/fileQueue`` for an unusable
    ///   queue directory; ``KafkaError/Code/unknownPartition`` for a given partition the file queue does not have.
    public convenience init(
        configuration: KafkaConsumerConfiguration,
        logger: Logger = Logger(label: "TracedKafka.consumer")
    ) throws {
        try self.init(configuration: configuration, logger: logger, events: nil)
    }

    /// Creates a consumer and the sequence of its events (partitions assigned, revoked and lost; errors).
    ///
    /// Until a reader asks for the first event, at most `maxBufferedEvents` events wait unread; past that the oldest
    /// unread event is dropped for each new one (and counted in ``droppedEventCount``), so a stream nobody reads never
    /// grows without bound. Once a reader has started, nothing is dropped (the consumer's events are few: rebalances;
    /// failed commits; the cluster's errors, at most one per kind every 5 seconds; on the file queue, each damaged
    /// record skipped and each partition it could not take).
    /// - Parameters:
    ///   - configuration: How to connect, what to read and how to commit.
    ///   - maxBufferedEvents: How many events wait unread at most (1,000 by default).
    ///   - logger: Where the consumer and librdkafka log.
    /// - Returns: The consumer and its events, which end when the consumer has shut down.
    /// - Throws: as ``init(configuration:logger:)``.
    public static func makeConsumerWithEvents(
        configuration: KafkaConsumerConfiguration,
        maxBufferedEvents: Int = 1_000,
        logger: Logger = Logger(label: "TracedKafka.consumer")
    ) throws -> (KafkaConsumer, AsyncStream<KafkaConsumerEvent>) {
        let (stream, events) = BoundedEventStream<KafkaConsumerEvent>.make(limit: maxBufferedEvents)
        return (try KafkaConsumer(configuration: configuration, logger: logger, events: events), stream)
    }

    /// How many events of ``makeConsumerWithEvents(configuration:maxBufferedEvents:logger:)``'s stream were dropped
    /// because more than its bound waited unread; 0 for a consumer made without events.
    public var droppedEventCount: Int { core.events?.droppedCount ?? 0 }

    private init(
        configuration: KafkaConsumerConfiguration,
        logger: Logger,
        events: BoundedEventStream<KafkaConsumerEvent>?
    ) throws {
        try configuration.validateConsumption()
        var configuration = configuration
        let clientID = ClientID.resolve(configuration.clientID, kind: "consumer")
        configuration.clientID = clientID
        let server = KafkaServerAddress(backend: configuration.backend, bootstrapServers: configuration.bootstrapServers)
        self.configuration = configuration
        self.metrics = KafkaClientMetrics(configuration: configuration.metrics, clientID: clientID, groupID: configuration.groupID, server: server)
        let logger = logger.withClientMetadata(clientID: configuration.clientID, groupID: configuration.groupID)
        self.tracing = KafkaConsumerTracing(
            configuration: configuration.tracing,
            groupID: configuration.groupID,
            clientID: configuration.clientID,
            server: server
        )
        let core = ConsumerCore(
            storeMode: configuration.storeMode,
            maxMessages: configuration.maxBufferedMessages,
            maxBytes: configuration.maxBufferedBytes,
            subscription: configuration.readsGivenPartitions ? nil : configuration.topics,
            events: events
        )
        self.core = core
        switch configuration.backend.kind {
        case .librdkafka:
            try KafkaServerAddress.validateBootstrapServers(configuration.bootstrapServers)
            self.backend = try RDConsumer(configuration: configuration, core: core, logger: logger, metrics: metrics)
        case .fileQueue(let options):
            self.backend = try FQConsumer(configuration: configuration, options: options, core: core, logger: logger, metrics: metrics)
        }
    }

    deinit {
        if core.acceptsWork {
            let backend = self.backend, core = self.core
            Task {
                await core.stopFetcher(wake: backend.wakeFetcher)
                await backend.close()
                core.events?.finish()
            }
        }
    }

    /// The consumed messages, in order per partition. Iterate it from one task only.
    ///
    /// A message counts as handled when the loop asks for the next message (or the sequence ends); in commit mode
    /// ``KafkaConsumerConfiguration/CommitMode/afterHandled(interval:)`` only handled messages are committed.
    /// Leaving the loop with `break` leaves the last message unhandled: it is delivered again later.
    /// The sequence ends after graceful shutdown; it throws a ``KafkaError`` on a fatal consumer error.
    ///
    /// Iterating makes no process span by itself: handle each message inside ``process(_:_:)`` to get the span that
    /// ``run(_:)`` gives, one line in the loop.
    public var messages: KafkaConsumerMessages { KafkaConsumerMessages(consumer: self) }

    /// Handles a message read from ``messages`` inside its CONSUMER span `process {topic}`, as ``run(_:)`` does:
    /// the span is a child of the producer's span (or of the ambient span) and links to it, it is
    /// `InstrumentationContext.current` inside `body`, so whatever `body` sends or traces continues the trace, and
    /// the call is timed in `messaging.process.duration`.
    ///
    /// ```swift
    /// import TracedKafka
    ///
    /// func consume(_ consumer: KafkaConsumer, handle: (KafkaConsumerMessage) async throws -> Void) async throws {
    ///     for try await message in consumer.messages {
    ///         try await consumer.process(message) { message in try await handle(message) }
    ///     }
    /// }
    /// ```
    ///
    /// When `body` throws, the span records the error (error status, `error.type`) and the error is rethrown: the
    /// loop decides what follows (leaving it leaves the message unhandled, so it is delivered again). There is no
    /// span without this call: a span the iterator ended at the next `next()` could not be the current context of
    /// the loop's body, so the work done for the message would not be its child.
    /// - Parameters:
    ///   - message: A message from ``messages``.
    ///   - body: The handling.
    nonisolated(nonsending) public func process(
        _ message: KafkaConsumerMessage,
        _ body: nonisolated(nonsending) (KafkaConsumerMessage) async throws -> Void
    ) async throws {
        try await measured(CollectionOfOne(message)) { try await tracing.withProcessSpan(message, body) }
    }

    // MARK: - Offsets and partitions

    /// Commits the position after a message and waits for the group coordinator to accept it.
    /// - Parameter message: The message handled last in its partition.
    /// - Throws: ``KafkaError`` with librdkafka's code when the commit fails, ``KafkaError/Code/shutDown`` after
    ///   shutdown, ``KafkaError/Code/noGroup`` for a consumer without a group.
    public func commit(_ message: KafkaConsumerMessage) async throws {
        try await commit(offsets: [message.nextOffset])
    }

    /// Commits the positions the consumer has stored, now, and waits for the group coordinator to accept them,
    /// instead of leaving them to the commit interval: in ``KafkaConsumerConfiguration/CommitMode/afterHandled(interval:)``
    /// the position after each handled message, in ``KafkaConsumerConfiguration/CommitMode/automatic(interval:)`` after
    /// each message handed out. Returns at once when nothing is stored; in
    /// ``KafkaConsumerConfiguration/CommitMode/manual`` nothing is, so commit messages or offsets instead.
    /// - Throws: as ``commit(offsets:)``.
    public func commit() async throws {
        try requireGroup(for: "commit")
        let offsets = core.machine.withLock { $0.storedOffsets() }
        guard !offsets.isEmpty else { return }
        try await commit(offsets: offsets)
    }

    /// Commits positions and waits for the group coordinator to accept them.
    /// - Parameter offsets: For each partition, the offset of the next message to read.
    /// - Throws: ``KafkaError`` with librdkafka's code when the commit fails, ``KafkaError/Code/shutDown`` after
    ///   shutdown, ``KafkaError/Code/unknownPartition`` for a partition that does not exist,
    ///   ``KafkaError/Code/invalidOffset`` for a negative offset, ``KafkaError/Code/noGroup`` for a consumer
    ///   without a group.
    public func commit(offsets: [KafkaTopicPartitionOffset]) async throws {
        try requireGroup(for: "commit")
        for offset in offsets { try offset.validateForCommit() }
        let started = metrics.started()
        do {
            try await tracing.withCommitSpan(offsets) { try await backend.commit(offsets) }
            metrics.recordCommit(offsets, startedAt: started, error: nil)
        } catch {
            metrics.recordCommit(offsets, startedAt: started, error: error)
            throw error
        }
    }

    /// The group's committed offsets: for each partition that has one, the offset of the next message to read.
    /// - Parameters:
    ///   - partitions: The partitions to ask about (any partitions, owned or not).
    ///   - timeout: How long to wait for the group coordinator.
    /// - Returns: The committed offset of each partition that has one.
    /// - Throws: ``KafkaError/Code/noGroup`` for a consumer without a group, ``KafkaError/Code/timedOut``,
    ///   ``KafkaError/Code/shutDown`` after shutdown, or librdkafka's error.
    public func committed(
        _ partitions: [KafkaTopicPartition],
        timeout: Duration = .seconds(10)
    ) async throws -> [KafkaTopicPartition: Int64] {
        try requireGroup(for: "read committed offsets")
        return try await backend.committed(partitions, timeout: timeout)
    }

    /// The offset of the next message ``messages`` hands out from an owned partition: the first one read ahead,
    /// else the one after the last handed out, else where fetching stands; `nil` while nothing is known yet (no
    /// message fetched since the partition was assigned).
    /// - Parameter partition: A partition this consumer owns.
    /// - Throws: ``KafkaError/Code/notAssigned`` for a partition not owned, ``KafkaError/Code/shutDown`` after shutdown.
    public func position(_ partition: KafkaTopicPartition) throws -> Int64? {
        try requireRunning()
        let known = try core.machine.withLock { machine -> Int64? in
            try machine.requireOwned([partition], for: "read the position of")
            return machine.position(of: partition)
        }
        return try known ?? backend.fetchPosition(partition)
    }

    /// Moves an owned partition: the next message handed out from it is at `offset`. Messages of it already read
    /// ahead are dropped; one out with the handler counts no more. With
    /// ``KafkaConsumerConfiguration/CommitMode/afterHandled(interval:)`` what is committed for the partition is from
    /// now on what is handled after the seek (until then, the seek's target).
    /// - Parameters:
    ///   - partition: A partition this consumer owns.
    ///   - offset: Where to go: ``KafkaOffset/beginning``, ``KafkaOffset/end``, ``KafkaOffset/tail(_:)`` or an offset.
    /// - Throws: ``KafkaError/Code/notAssigned`` for a partition not owned; ``KafkaError/Code/invalidOffset`` for
    ///   an offset outside what the partition holds (or ``KafkaOffset/committed``); ``KafkaError/Code/shutDown``
    ///   after shutdown; librdkafka's error.
    public func seek(_ partition: KafkaTopicPartition, to offset: KafkaOffset) async throws {
        try requireRunning()
        try offset.validate(for: partition)
        try core.machine.withLock { try $0.requireOwned([partition], for: "seek") }
        let backend = self.backend
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            // Carried out by the fetcher between two fetches, so nothing it fetched before reaches the handler after.
            core.request(.seek(partition, offset, continuation), start: backend.spawnFetcher, wake: backend.wakeFetcher)
        }
    }

    /// Stops fetching from partitions until ``resume(_:)``. Messages already buffered are still delivered.
    /// - Parameter partitions: Partitions assigned to this consumer.
    /// - Throws: ``KafkaError/Code/notAssigned`` for a partition not owned, ``KafkaError`` when librdkafka refuses,
    ///   ``KafkaError/Code/shutDown`` after shutdown.
    public func pause(_ partitions: [KafkaTopicPartition]) throws {
        try requireRunning()
        try core.machine.withLock { try $0.setPaused(partitions, true) }
        try backend.pause(partitions)
    }

    /// Resumes fetching from paused partitions.
    /// - Parameter partitions: Partitions paused with ``pause(_:)``.
    /// - Throws: ``KafkaError/Code/notAssigned`` for a partition not owned, ``KafkaError`` when librdkafka refuses,
    ///   ``KafkaError/Code/shutDown`` after shutdown.
    public func resume(_ partitions: [KafkaTopicPartition]) throws {
        try requireRunning()
        try core.machine.withLock { try $0.setPaused(partitions, false) }
        try backend.resume(partitions)
    }

    /// The partitions this consumer owns now.
    public var assignment: [KafkaTopicPartition] { core.machine.withLock { $0.ownedPartitions } }

    /// The group metadata a transaction commits this consumer's offsets for.
    /// - Throws: ``KafkaError/Code/noGroup`` without a group; ``KafkaError/Code/configuration`` unless the commit mode
    ///   is ``KafkaConsumerConfiguration/CommitMode/manual`` (the consumer's own commits would race the
    ///   transaction's); ``KafkaError/Code/unsupported`` on the file queue; ``KafkaError/Code/shutDown``.
    func groupMetadataForTransaction() throws -> RDGroupMetadata {
        try requireGroup(for: "send offsets to a transaction")
        guard configuration.commitMode == .manual else {
            throw KafkaError(
                code: .configuration,
                reason: "A consumer whose offsets a transaction commits needs commitMode .manual; this one commits by itself"
            )
        }
        try requireRunning()
        return try backend.groupMetadata()
    }

    private func requireRunning() throws {
        guard core.acceptsWork else { throw KafkaError.shutDown("The consumer") }
    }

    private func requireGroup(for what: String) throws {
        guard configuration.hasGroup else {
            throw KafkaError(code: .noGroup, reason: "Cannot \(what): the consumer reads its partitions without a group id")
        }
    }

    // MARK: - Subscription

    /// Subscribes this group member to `topics` instead of what it subscribed to, as librdkafka's
    /// `rd_kafka_subscribe` does: the group deals the new topics' partitions among its members that subscribe to
    /// them. Before ``run()`` it changes the subscription the consumer starts with; while running, the group
    /// rebalances, and the partitions that go are reported as usual (``KafkaConsumerEvent/Kind/partitionsRevoked``
    /// after committing what was handled of them, per the commit mode, and the new ones as
    /// ``KafkaConsumerEvent/Kind/partitionsAssigned``).
    ///
    /// From the moment it returns no message of a topic left out is handed out: those read ahead are dropped,
    /// unhandled, as on a revoke, so their partition's next owner reads them from the committed offset. A message
    /// of such a topic already out with the handler still counts as handled when the handler is done. Its
    /// partitions stay in ``assignment`` until the group has taken them back.
    ///
    /// ```swift
    /// import TracedKafka
    ///
    /// func follow(_ consumer: KafkaConsumer) async throws {
    ///     try await consumer.subscribe(topics: ["orders", "refunds"])   // replaces the subscription
    ///     print(consumer.subscribedTopics)                              // ["orders", "refunds"]
    /// }
    /// ```
    /// - Parameter topics: The topics to read, each once (duplicates are dropped); none is the same as
    ///   ``unsubscribe()``. A topic that does not exist yet is read once it does (librdkafka reports it as an
    ///   ``KafkaConsumerEvent/Kind/error`` event meanwhile).
    /// - Throws: ``KafkaError/Code/noGroup`` for a consumer of given partitions (with or without a group id: it is
    ///   no member of a group); ``KafkaError/Code/unknownPartition`` for a name Kafka refuses as a topic name (an
    ///   empty one too); ``KafkaError/Code/shutDown`` once shutdown began; librdkafka's refusal, or
    ///   ``KafkaError/Code/fileQueue`` when the file queue cannot write the member file (a full disk), after which
    ///   the subscription is what it was.
    public func subscribe(topics: [String]) async throws {
        try requireMembership(for: "subscribe")
        for topic in topics { try KafkaTopicName.validate(topic, code: .unknownPartition) }
        try requireRunning()
        // librdkafka refuses a topic named twice.
        try await backend.subscribe(ConsumerStateMachine.withoutDuplicates(topics))
    }

    /// Ends this group member's subscription: every partition it owns is revoked — what was handled of them is
    /// committed first, per the commit mode, and reported in a ``KafkaConsumerEvent/Kind/partitionsRevoked`` event —
    /// its messages read ahead are dropped, and nothing more is read until ``subscribe(topics:)``. The consumer
    /// keeps running; ``messages`` waits. With librdkafka it also leaves the group, and joins again on the next
    /// subscription.
    /// - Throws: ``KafkaError/Code/noGroup`` for a consumer of given partitions; ``KafkaError/Code/shutDown`` once
    ///   shutdown began; librdkafka's refusal, or the file queue's ``KafkaError/Code/fileQueue``, as
    ///   ``subscribe(topics:)``.
    public func unsubscribe() async throws {
        try requireMembership(for: "unsubscribe")
        try requireRunning()
        try await backend.subscribe([])
    }

    /// The topics this group member subscribes to now, in the order first named: the configured ones until
    /// ``subscribe(topics:)`` or ``unsubscribe()`` changes them (the last change made, also after shutdown). Empty
    /// for a consumer of given partitions.
    public var subscribedTopics: [String] { core.subscription ?? [] }

    private func requireMembership(for what: String) throws {
        guard configuration.hasGroup, !configuration.readsGivenPartitions else {
            throw KafkaError(
                code: .noGroup,
                reason: "Cannot \(what): the consumer reads given partitions, as no member of a group; make a consumer with a groupID and topics (or none) to subscribe"
            )
        }
    }

    // MARK: - Lifecycle

    /// Fetches until graceful shutdown (or ``triggerGracefulShutdown()`` or task cancellation); then ends
    /// ``messages``, waits for the message being handled, commits what was handled and leaves the group.
    /// - Throws: ``KafkaError/Code/alreadyRunning`` on a second call.
    public func run() async throws {
        try await run(nil)
    }

    /// `run()`, for an action already taken from the lifecycle (or `nil` to take it now).
    private func run(_ action: ClientLifecycle.RunAction?) async throws {
        try await core.run(
            action,
            start: startFetching,
            trigger: { [weak self] in self?.triggerGracefulShutdown() },
            shutDown: shutDown
        )
    }

    /// Asks the consumer to shut down: ``messages`` ends after the message being handled, ``run()`` commits and
    /// leaves the group. Without a running ``run()``, the consumer shuts down in the background.
    public func triggerGracefulShutdown() {
        core.triggerShutdown { [self] in await shutDown() }
    }

    @Sendable private func shutDown() async {
        core.endMessages(.shutdown)
        // Detached: when run() was cancelled, the wait must still last until the handler is done (or times out).
        let timeout = configuration.shutdownTimeout, core = self.core, backend = self.backend
        await Task.detached { await core.waitUntilReaderIdle(timeout: timeout) }.value
        await core.stopFetcher(wake: backend.wakeFetcher)
        await backend.close()
        core.events?.finish()
    }

    func startFetching() {
        if core.startFetcher() { backend.spawnFetcher() }
    }

    // MARK: - Reading

    /// The message after `handled`, ready to hand out (counted, its trace context extracted), or `nil` after
    /// shutdown.
    nonisolated(nonsending) func nextMessage(after handled: ConsumerPosition?) async throws -> (KafkaConsumerMessage, ConsumerPosition)? {
        guard case (var message, let position)? = try await core.next(after: handled, onWait: startFetching) else { return nil }
        prepare(&message)
        return (message, position)
    }

    /// Counts a message handed to the application and extracts its trace context — here, in the consuming task,
    /// so a tracer bound with withTracer is the one used.
    private func prepare(_ message: inout KafkaConsumerMessage, in scope: KafkaConsumerTracing.ProcessScope? = nil) {
        metrics.recordConsumed(message)
        if tracing.extractsContext { message.traceContext = tracing.extractContext(from: message, in: scope) }
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
    ///
    /// The handler is `nonisolated(nonsending)`: it runs where the consumer's reading loop runs (in the task that
    /// called this, on the global executor), so a call costs no executor hop. An actor's method passed as the handler
    /// still runs on its actor (the call hops there).
    /// - Parameter handler: Handles one message.
    /// - Throws: The handler's error under the `stop` and `retry` policies (after committing what was handled
    ///   before it), or ``KafkaError/Code/alreadyRunning``.
    public func run(_ handler: nonisolated(nonsending) @escaping @Sendable (KafkaConsumerMessage) async throws -> Void) async throws {
        // The handler itself is all the processing when nothing is measured or traced and a failure stops.
        let direct = !metrics.isEnabled && configuration.handlerFailure == .stop && !configuration.tracing.isEnabled
        try await whileRunning {
            var handled: ConsumerPosition?
            // Where process spans get their parent, for every message of this loop.
            let scope = self.configuration.tracing.isEnabled ? self.tracing.processScope() : nil
            while true {
                // Taken without suspending while messages are buffered: one lock, no async hop per message.
                switch self.core.take(after: handled) {
                case .message(var message, let position, _):
                    handled = nil
                    self.prepare(&message, in: scope)
                    if direct {
                        try await handler(message)
                    } else {
                        try await self.processWithPolicy(CollectionOfOne(message)) { [message] in
                            try await self.tracing.withProcessSpan(message, in: scope, handler)
                        }
                    }
                    handled = position
                case .wait:
                    handled = nil
                    self.startFetching()
                    try await self.core.waitForMessages()
                case .end(let error):
                    if let error { throw error }
                    return
                }
            }
        }
    }

    /// Runs the consumer and handles messages in batches with `handler`, until graceful shutdown.
    ///
    /// A batch is the next message plus whatever is already buffered, up to `maxMessages`. With tracing on, each
    /// call runs inside one CONSUMER span `process {topic}` (child of the ambient span, else a root) with
    /// `messaging.batch.message_count` and one link per message to its producer's context, each link carrying the
    /// message's partition and offset. The whole batch counts as handled when the handler returns. The handler runs
    /// as ``run(_:)``'s does (`nonisolated(nonsending)`, without an executor hop).
    /// - Parameters:
    ///   - maxMessages: The largest batch.
    ///   - handler: Handles one batch.
    /// - Throws: as ``run(_:)``.
    public func runBatches(
        maxMessages: Int = 500,
        _ handler: nonisolated(nonsending) @escaping @Sendable ([KafkaConsumerMessage]) async throws -> Void
    ) async throws {
        let maxMessages = max(1, maxMessages)
        try await whileRunning {
            var handled: [ConsumerPosition] = []
            while true {
                let pollStart = self.tracing.pollStarted()
                guard let entries = try await self.core.nextBatch(after: handled, max: maxMessages, onWait: self.startFetching) else { break }
                handled = []
                var messages = entries.map(\.message)
                for index in messages.indices { self.prepare(&messages[index]) }
                self.tracing.recordPoll(messages, startedAt: pollStart, isBatch: true)
                try await self.processWithPolicy(messages) { [messages] in
                    try await self.tracing.withBatchSpan(messages, handler)
                }
                handled = entries.map(\.position)
            }
        }
    }

    /// Runs `loop` (the handler API's reading loop) beside ``run()``; when the loop throws, what it held is not
    /// handled, the consumer shuts down (committing what was handled before) and the error is rethrown.
    private func whileRunning(_ loop: @escaping @Sendable () async throws -> Void) async throws {
        guard core.machine.withLock({ $0.registerReader() }) else { throw Self.secondReader }
        // The transition to running happens here, before anything is spawned, so a second run() fails at once.
        let action = try core.withLifecycle { try $0.run() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run(action) }
            do {
                try await loop()
            } catch {
                core.readerGone()
                triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            try await group.waitForAll()
        }
    }

    private nonisolated(nonsending) func processWithPolicy<Messages: Collection<KafkaConsumerMessage>>(
        _ messages: Messages,
        _ process: nonisolated(nonsending) @Sendable () async throws -> Void
    ) async throws {
        var attempt = 1
        while true {
            do {
                try await measured(messages, process)
                return
            } catch {
                if Task.isCancelled || error is CancellationError || (error as? KafkaError)?.code == .cancelled { throw error }
                switch configuration.handlerFailure.kind {
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

    /// Runs one handler call, recording its duration and outcome.
    private nonisolated(nonsending) func measured<Messages: Collection<KafkaConsumerMessage>>(
        _ messages: Messages,
        _ call: nonisolated(nonsending) () async throws -> Void
    ) async throws {
        let started = metrics.started()
        do {
            try await call()
        } catch {
            metrics.recordProcess(messages, startedAt: started, error: error)
            throw error
        }
        metrics.recordProcess(messages, startedAt: started, error: nil)
    }

    static let secondReader = KafkaError(
        code: .alreadyRunning,
        reason: "The consumer's messages are already being read (messages is iterated once, or run(_:) is running)"
    )
}

/// The messages of a ``KafkaConsumer``, as an `AsyncSequence`. Iterate it once, from one task.
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
    /// A consumed message.
    public typealias Element = KafkaConsumerMessage

    let consumer: KafkaConsumer

    /// Makes the one iterator of this consumer. A second iterator (or one made while ``KafkaConsumer/run(_:)``
    /// reads the messages) throws ``KafkaError/Code/alreadyRunning`` from its first `next()`.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(reader: Reader(consumer: consumer, isReader: consumer.core.machine.withLock { $0.registerReader() }))
    }

    /// Iterates the messages; asking for the next message marks the previous one handled.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let reader: Reader

        /// The next message, or `nil` after shutdown.
        /// - Throws: ``KafkaError`` on a fatal consumer error; ``KafkaError/Code/cancelled`` when the task is cancelled.
        public mutating func next() async throws -> KafkaConsumerMessage? {
            try await reader.next()
        }
    }

    /// The one reader: remembers the message out with the loop, and tells the consumer when the iterator is gone
    /// (what it held is then not handled).
    final class Reader: Sendable {
        private let consumer: KafkaConsumer
        private let isReader: Bool
        private let handled = Mutex<ConsumerPosition?>(nil)

        init(consumer: KafkaConsumer, isReader: Bool) {
            self.consumer = consumer
            self.isReader = isReader
        }

        deinit { if isReader { consumer.core.readerGone() } }

        func next() async throws -> KafkaConsumerMessage? {
            guard isReader else { throw KafkaConsumer.secondReader }
            let previous = handled.withLock { $0.take() }
            let pollStart = consumer.tracing.pollStarted()
            guard let (message, position) = try await consumer.nextMessage(after: previous) else { return nil }
            handled.withLock { $0 = position }
            consumer.tracing.recordPoll(CollectionOfOne(message), startedAt: pollStart, isBatch: false)
            return message
        }
    }
}
