/// How a ``KafkaConsumer`` connects, what it reads and how it commits.
///
/// A consumer reads either the ``topics`` of a consumer group (``groupID``), sharing their partitions with the
/// group's other members, or given ``partitions`` from given offsets, alone (with a ``groupID`` only to commit to).
/// Anything librdkafka understands that the typed fields lack goes into ``properties`` under librdkafka's own
/// names; a raw property wins over a typed field that maps to the same name.
public struct KafkaConsumerConfiguration: Sendable {
    /// Where to start in a partition that has no committed offset for the group (`auto.offset.reset`). A struct
    /// with static members, so values can be added without breaking anybody's `switch`.
    public struct AutoOffsetReset: Sendable, Hashable, CustomStringConvertible {
        enum Kind: String, Hashable { case earliest, latest, error }
        let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The oldest record still in the partition.
        public static let earliest = AutoOffsetReset(.earliest)
        /// Only records produced from now on.
        public static let latest = AutoOffsetReset(.latest)
        /// Fail with an error event.
        public static let error = AutoOffsetReset(.error)

        /// librdkafka's value for `auto.offset.reset`.
        public var description: String { kind.rawValue }
    }

    /// When the consumer commits offsets. A struct with static members, so modes can be added without breaking
    /// anybody's `switch`.
    public struct CommitMode: Sendable, Hashable {
        enum Kind: Hashable {
            case afterHandled(interval: Duration)
            case manual
            case automatic(interval: Duration)
        }

        let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The offset of a message is stored once it has been handled — when the loop over ``KafkaConsumer/messages``
        /// asks for the next message (or ends) — and stored offsets are committed in the background every
        /// `interval`, when partitions are revoked, and at shutdown. A message is never committed before it is
        /// handled (at-least-once). The default.
        /// - Parameter interval: How often stored offsets are committed (5 s by default).
        public static func afterHandled(interval: Duration = .seconds(5)) -> CommitMode { CommitMode(.afterHandled(interval: interval)) }
        /// Nothing is committed unless you call ``KafkaConsumer/commit(_:)`` or ``KafkaConsumer/commit(offsets:)``.
        public static let manual = CommitMode(.manual)
        /// Auto-commit without waiting for the handler: a message's offset is stored as soon as it is handed to the
        /// application, before it is handled, and committed every `interval` (at-most-once on a crash).
        /// - Parameter interval: How often stored offsets are committed (5 s by default).
        public static func automatic(interval: Duration = .seconds(5)) -> CommitMode { CommitMode(.automatic(interval: interval)) }

        /// Stores after handling, commits every 5 seconds.
        public static var afterHandled: CommitMode { .afterHandled() }

        /// How often offsets are committed in the background, for the modes that do.
        var interval: Duration? {
            switch kind {
            case .afterHandled(let interval), .automatic(let interval): return interval
            case .manual: return nil
            }
        }
    }

    /// What ``KafkaConsumer/run(_:)`` does when the handler throws. The failed message is never committed by the
    /// failure itself; its span records the error either way. A struct with static members, so policies can be added
    /// without breaking anybody's `switch`.
    public struct HandlerFailurePolicy: Sendable, Hashable {
        enum Kind: Hashable {
            case stop
            case skip
            case retry(attempts: Int, backoff: Duration)
        }

        let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// Stop: the consumer shuts down gracefully (committing what was handled before) and `run(_:)` rethrows the
        /// handler's error. The failed message is delivered again after a restart. The default.
        public static let stop = HandlerFailurePolicy(.stop)
        /// Count the message as handled and go on with the next one.
        public static let skip = HandlerFailurePolicy(.skip)
        /// Call the handler again, up to `attempts` times in all, waiting `backoff` between attempts; then stop.
        /// - Parameters:
        ///   - attempts: How many calls in all.
        ///   - backoff: The wait between two calls.
        public static func retry(attempts: Int, backoff: Duration) -> HandlerFailurePolicy {
            HandlerFailurePolicy(.retry(attempts: attempts, backoff: backoff))
        }
    }

    /// The brokers to bootstrap from, as `host:port` strings (for the librdkafka backend).
    public var bootstrapServers: [String]
    /// Where records go: a Kafka cluster through librdkafka (the default), or the local file queue.
    public var backend: KafkaBackend
    /// Messaging metrics through swift-metrics (on by default, to `MetricsSystem.factory`).
    public var metrics: KafkaMetricsConfiguration
    /// The consumer group (`group.id`); `nil` for a consumer of given ``partitions`` that commits nothing. An empty
    /// string is refused when the consumer is made.
    public var groupID: String?
    /// The topics a member of the group subscribes to at first (``KafkaConsumer/subscribe(topics:)`` changes them
    /// later). Empty when the consumer reads given ``partitions``, or for a member that subscribes only later.
    public var topics: [String]
    /// The partitions to read, each from its own offset, without joining the group (no rebalances); empty for a
    /// group member, which reads ``topics``.
    public var partitions: [KafkaPartitionStart]
    /// Where to start in a partition the group has no committed offset for (or whose committed offset the partition
    /// no longer holds). ``AutoOffsetReset/latest`` by default, as in Kafka, librdkafka and swift-kafka-client: a new
    /// group reads only what is sent after it joins; set ``AutoOffsetReset/earliest`` to read what the topic holds.
    public var autoOffsetReset: AutoOffsetReset
    /// When offsets are committed.
    public var commitMode: CommitMode
    /// The client id reported to the brokers (`client.id`) and recorded as `messaging.client.id` on spans, the
    /// statistics gauges and log lines; `nil` names the client `consumer-N`, N counting the consumers made in this
    /// process.
    public var clientID: String?
    /// How long graceful shutdown waits for the message being handled before it commits and leaves the group.
    public var shutdownTimeout: Duration
    /// How many messages are read ahead of the handler before fetching pauses.
    public var maxBufferedMessages: Int
    /// How many bytes of messages are read ahead of the handler before fetching pauses, counting each message's key
    /// and value (not its headers): with large records this bound, not ``maxBufferedMessages``, keeps memory in
    /// check. It may be passed by one fetched batch. 32 MiB by default. librdkafka keeps a prefetch queue of its
    /// own besides (`queued.max.messages.kbytes`, 64 MiB by default; a raw property changes it).
    public var maxBufferedBytes: Int
    /// Tracing: spans and trace context in record headers.
    public var tracing: KafkaTracingConfiguration
    /// TLS and SASL (plaintext by default); raw ``properties`` win over what it sets.
    public var security: KafkaSecurity
    /// What the handler API does when the handler throws.
    public var handlerFailure: HandlerFailurePolicy
    /// Raw librdkafka properties, applied after the typed fields. An unknown name or invalid value makes
    /// ``KafkaConsumer/init(configuration:logger:)`` throw with librdkafka's message.
    public var properties: [String: String]

    /// Creates a configuration.
    /// - Parameters:
    ///   - bootstrapServers: The brokers to bootstrap from, as `host:port` (for the librdkafka backend).
    ///   - groupID: The consumer group.
    ///   - topics: The topics to subscribe to at first; empty for none until ``KafkaConsumer/subscribe(topics:)``.
    ///   - autoOffsetReset: Where to start without a committed offset: the partition's end by default.
    ///   - commitMode: When offsets are committed.
    ///   - clientID: The client id, if any.
    ///   - shutdownTimeout: How long shutdown waits for the message being handled.
    ///   - maxBufferedMessages: How many messages are read ahead of the handler.
    ///   - maxBufferedBytes: How many bytes of keys and values are read ahead of the handler.
    ///   - tracing: Spans and trace context in record headers.
    ///   - security: TLS and SASL settings.
    ///   - backend: librdkafka (the default) or the local file queue.
    ///   - metrics: Messaging metrics through swift-metrics.
    ///   - handlerFailure: What the handler API does when the handler throws.
    ///   - properties: Raw librdkafka properties.
    public init(
        bootstrapServers: [String] = [],
        groupID: String,
        topics: [String],
        autoOffsetReset: AutoOffsetReset = .latest,
        commitMode: CommitMode = .afterHandled,
        clientID: String? = nil,
        shutdownTimeout: Duration = .seconds(10),
        maxBufferedMessages: Int = 10_000,
        maxBufferedBytes: Int = 32 << 20,
        tracing: KafkaTracingConfiguration = .enabled,
        security: KafkaSecurity = .plaintext,
        backend: KafkaBackend = .librdkafka,
        metrics: KafkaMetricsConfiguration = .enabled,
        handlerFailure: HandlerFailurePolicy = .stop,
        properties: [String: String] = [:]
    ) {
        self.tracing = tracing
        self.security = security
        self.backend = backend
        self.metrics = metrics
        self.handlerFailure = handlerFailure
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        self.topics = topics
        self.partitions = []
        self.autoOffsetReset = autoOffsetReset
        self.commitMode = commitMode
        self.clientID = clientID
        self.shutdownTimeout = shutdownTimeout
        self.maxBufferedMessages = maxBufferedMessages
        self.maxBufferedBytes = maxBufferedBytes
        self.properties = properties
    }

    /// Creates a configuration for a consumer that reads given partitions from given offsets, without joining a
    /// group: no rebalances, and each partition is this consumer's alone. With a `groupID` it can still commit
    /// (``KafkaConsumer/commit(_:)``, and the commit mode) and start from ``KafkaOffset/committed``; without one,
    /// nothing is committed and ``KafkaConsumer/commit(_:)`` throws ``KafkaError/Code/noGroup``.
    /// - Parameters:
    ///   - bootstrapServers: The brokers to bootstrap from, as `host:port` (for the librdkafka backend).
    ///   - partitions: The partitions to read and where to start in each.
    ///   - groupID: The group to commit to, or `nil` for none.
    ///   - autoOffsetReset: Where to start in a partition without a committed offset, for ``KafkaOffset/committed``:
    ///     the partition's end by default.
    ///   - commitMode: When offsets are committed (with a group).
    ///   - clientID: The client id, if any.
    ///   - shutdownTimeout: How long shutdown waits for the message being handled.
    ///   - maxBufferedMessages: How many messages are read ahead of the handler.
    ///   - maxBufferedBytes: How many bytes of keys and values are read ahead of the handler.
    ///   - tracing: Spans and trace context in record headers.
    ///   - security: TLS and SASL settings.
    ///   - backend: librdkafka (the default) or the local file queue.
    ///   - metrics: Messaging metrics through swift-metrics.
    ///   - handlerFailure: What the handler API does when the handler throws.
    ///   - properties: Raw librdkafka properties.
    public init(
        bootstrapServers: [String] = [],
        partitions: [KafkaPartitionStart],
        groupID: String? = nil,
        autoOffsetReset: AutoOffsetReset = .latest,
        commitMode: CommitMode = .afterHandled,
        clientID: String? = nil,
        shutdownTimeout: Duration = .seconds(10),
        maxBufferedMessages: Int = 10_000,
        maxBufferedBytes: Int = 32 << 20,
        tracing: KafkaTracingConfiguration = .enabled,
        security: KafkaSecurity = .plaintext,
        backend: KafkaBackend = .librdkafka,
        metrics: KafkaMetricsConfiguration = .enabled,
        handlerFailure: HandlerFailurePolicy = .stop,
        properties: [String: String] = [:]
    ) {
        self.init(
            bootstrapServers: bootstrapServers, groupID: groupID ?? "", topics: [], autoOffsetReset: autoOffsetReset,
            commitMode: commitMode, clientID: clientID, shutdownTimeout: shutdownTimeout,
            maxBufferedMessages: maxBufferedMessages, maxBufferedBytes: maxBufferedBytes, tracing: tracing,
            security: security, backend: backend, metrics: metrics, handlerFailure: handlerFailure, properties: properties
        )
        self.partitions = partitions
        self.groupID = groupID
    }

    /// librdkafka's own read-ahead, behind this consumer's buffer. librdkafka 2.0.2 stops fetching once its queue
    /// holds `queued.min.messages` (or `queued.max.messages.kbytes`) and looks again only when its broker thread
    /// next wakes, up to a second later: a consumer that lags its fetcher but drains that queue in less than a
    /// second starves for up to a second at a time. So the count threshold is set far above what the buffer holds
    /// (100 × ``maxBufferedMessages``, from 1,000,000 to 10,000,000) and the queue is bounded by bytes instead:
    /// twice ``maxBufferedBytes``, at least librdkafka's own 64 MiB.
    var rdKafkaFetchQueue: [(String, String)] {
        let messages = min(10_000_000, max(1_000_000, maxBufferedMessages.multipliedReportingOverflow(by: 100).partialValue))
        let kilobytes = min(2_097_151, max(65_536, maxBufferedBytes / 512))
        return [("queued.min.messages", String(messages)), ("queued.max.messages.kbytes", String(kilobytes))]
    }

    /// Whether the consumer reads given partitions instead of subscribing as a group member.
    var readsGivenPartitions: Bool { !partitions.isEmpty }

    /// Whether the consumer has a group to commit to.
    var hasGroup: Bool { groupID != nil }

    /// When the consumer stores offsets for commit.
    var storeMode: ConsumerStateMachine.StoreMode {
        guard hasGroup else { return .never }
        switch commitMode.kind {
        case .afterHandled: return .whenHandled
        case .automatic: return .whenHandedOut
        case .manual: return .never
        }
    }

    /// Checks what the consumer reads.
    /// - Throws: ``KafkaError/Code/noTopics`` for neither a group, topics nor partitions (or an empty topic name);
    ///   ``KafkaError/Code/configuration`` for an empty group id, for both topics and partitions, for a member
    ///   without a group, for a topic Kafka refuses, a negative partition or offset, a partition named twice, or
    ///   ``KafkaOffset/committed`` without a group.
    func validateConsumption() throws {
        guard groupID != "" else {
            throw KafkaError(
                code: .configuration,
                reason: "The group id is empty: give a group's name, or nil for a consumer of given partitions without a group"
            )
        }
        if readsGivenPartitions {
            guard topics.isEmpty else {
                throw KafkaError(code: .configuration, reason: "The consumer configuration names both topics to subscribe to and partitions to read; choose one")
            }
            var seen = Set<KafkaTopicPartition>()
            for start in partitions {
                try KafkaTopicName.validate(start.topic, code: .configuration)
                guard start.partition >= 0, start.partition <= Int(Int32.max) else {
                    throw KafkaError(code: .configuration, reason: "Partition \(start.partition) of \(start.topic) is out of range")
                }
                guard seen.insert(start.topicPartition).inserted else {
                    throw KafkaError(code: .configuration, reason: "\(start.topicPartition) is named twice")
                }
                do { try start.offset.validate(for: start.topicPartition) } catch let error as KafkaError {
                    throw KafkaError(code: .configuration, reason: error.reason)
                }
                if start.offset == .committed, !hasGroup {
                    throw KafkaError(code: .configuration, reason: "\(start): the committed offset needs a group id")
                }
            }
            return
        }
        // A group member may start without topics and subscribe later (KafkaConsumer.subscribe(topics:)).
        guard !topics.isEmpty || hasGroup else {
            throw KafkaError(
                code: .noTopics,
                reason: "The consumer configuration names no group to subscribe in, no topic and no partition to read"
            )
        }
        guard !topics.contains("") else {
            throw KafkaError(code: .noTopics, reason: "The consumer configuration names an empty topic")
        }
        for topic in topics { try KafkaTopicName.validate(topic, code: .configuration) }
        guard hasGroup else {
            throw KafkaError(code: .configuration, reason: "A consumer that subscribes to topics needs a group id (or read given partitions without one)")
        }
    }

    /// The librdkafka properties this configuration stands for, raw properties last.
    /// - Throws: ``KafkaError/Code/configuration`` for security settings that cannot work.
    func rdKafkaProperties() throws -> [(String, String)] {
        guard properties["group.id"] == nil else {
            throw KafkaError(
                code: .configuration,
                reason: "Set groupID rather than the raw group.id property: the consumer must know its group"
            )
        }
        var result: [(String, String)] = [
            ("bootstrap.servers", bootstrapServers.joined(separator: ",")),
            // A consumer of given partitions without a group still gets one: librdkafka's assign path wants a
            // group id (its issue #3261); nothing is ever committed to it.
            ("group.id", groupID ?? "tracedkafka-no-group-\(UInt64.random(in: 0...UInt64.max))"),
            ("auto.offset.reset", autoOffsetReset.kind.rawValue),
        ]
        switch (hasGroup ? commitMode : .manual).kind {
        case .afterHandled(let interval):
            result += [
                ("enable.auto.commit", "true"), ("enable.auto.offset.store", "false"),
                ("auto.commit.interval.ms", String(max(1, interval.milliseconds))),
            ]
        case .manual:
            result += [("enable.auto.commit", "false"), ("enable.auto.offset.store", "false")]
        case .automatic(let interval):
            // Stored when a message is handed to the application, not when librdkafka fetches it into the buffer:
            // buffered messages dropped at shutdown must not count as consumed.
            result += [
                ("enable.auto.commit", "true"), ("enable.auto.offset.store", "false"),
                ("auto.commit.interval.ms", String(max(1, interval.milliseconds))),
            ]
        }
        if let clientID { result.append(("client.id", clientID)) }
        if let statistics = metrics.rdKafkaStatisticsProperty { result.append(statistics) }
        result.append(contentsOf: rdKafkaFetchQueue)
        result.append(contentsOf: try security.rdKafkaProperties())
        result.append(contentsOf: properties.sorted { $0.key < $1.key })
        return result
    }
}
