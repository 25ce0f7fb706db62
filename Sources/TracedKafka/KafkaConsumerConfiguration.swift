/// How a ``KafkaConsumer`` connects, subscribes and commits.
///
/// Anything librdkafka understands that the typed fields lack goes into ``properties`` under librdkafka's own
/// names; a raw property wins over a typed field that maps to the same name.
public struct KafkaConsumerConfiguration: Sendable {
    /// Where to start in a partition that has no committed offset for the group (`auto.offset.reset`).
    public enum AutoOffsetReset: String, Sendable {
        /// The oldest record still in the partition.
        case earliest
        /// Only records produced from now on.
        case latest
        /// Fail with an error event.
        case error
    }

    /// When the consumer commits offsets.
    public enum CommitMode: Sendable, Hashable {
        /// The offset of a message is stored once it has been handled — when the loop over ``KafkaConsumer/messages``
        /// asks for the next message (or ends) — and stored offsets are committed in the background every
        /// `interval`, when partitions are revoked, and at shutdown. A message is never committed before it is
        /// handled (at-least-once). The default.
        case afterHandled(interval: Duration = .seconds(5))
        /// Nothing is committed unless you call ``KafkaConsumer/commit(_:)`` or ``KafkaConsumer/commit(offsets:)``.
        case manual
        /// Auto-commit without waiting for the handler: a message's offset is stored as soon as it is handed to the
        /// application, before it is handled, and committed every `interval` (at-most-once on a crash).
        case automatic(interval: Duration = .seconds(5))

        /// Stores after handling, commits every 5 seconds.
        public static var afterHandled: CommitMode { .afterHandled() }
    }

    /// What ``KafkaConsumer/run(_:)`` does when the handler throws. The failed message is never committed by the
    /// failure itself; its span records the error either way.
    public enum HandlerFailurePolicy: Sendable, Hashable {
        /// Stop: the consumer shuts down gracefully (committing what was handled before) and `run(_:)` rethrows the
        /// handler's error. The failed message is delivered again after a restart. The default.
        case stop
        /// Count the message as handled and go on with the next one.
        case skip
        /// Call the handler again, up to `attempts` times in all, waiting `backoff` between attempts; then stop.
        case retry(attempts: Int, backoff: Duration)
    }

    /// The brokers to bootstrap from, as `host:port` strings (for the librdkafka backend).
    public var bootstrapServers: [String]
    /// Where records go: a Kafka cluster through librdkafka (the default), or the local file queue.
    public var backend: KafkaBackend
    /// Messaging metrics through swift-metrics (on by default, to `MetricsSystem.factory`).
    public var metrics: KafkaMetricsConfiguration
    /// The consumer group (`group.id`).
    public var groupID: String
    /// The topics to subscribe to; at least one.
    public var topics: [String]
    /// Where to start without a committed offset.
    public var autoOffsetReset: AutoOffsetReset
    /// When offsets are committed.
    public var commitMode: CommitMode
    /// The client id reported to the brokers (`client.id`), if set.
    public var clientID: String?
    /// How long graceful shutdown waits for the message being handled before it commits and leaves the group.
    public var shutdownTimeout: Duration
    /// How many messages are read ahead of the handler before fetching pauses.
    public var maxBufferedMessages: Int
    /// How many bytes of messages (keys, values, headers) are read ahead of the handler before fetching pauses:
    /// with large records this bound, not ``maxBufferedMessages``, keeps memory in check. It may be passed by one
    /// fetched batch. 32 MiB by default. librdkafka keeps a prefetch queue of its own besides
    /// (`queued.max.messages.kbytes`, 64 MiB by default; a raw property changes it).
    public var maxBufferedBytes: Int
    /// Tracing: spans and trace context in record headers.
    public var tracing: KafkaTracingConfiguration
    /// What the handler API does when the handler throws.
    public var handlerFailure: HandlerFailurePolicy
    /// Raw librdkafka properties, applied after the typed fields. An unknown name or invalid value makes
    /// ``KafkaConsumer/init(configuration:logger:)`` throw with librdkafka's message.
    public var properties: [String: String]

    /// Creates a configuration.
    /// - Parameters:
    ///   - bootstrapServers: The brokers to bootstrap from, as `host:port` (for the librdkafka backend).
    ///   - groupID: The consumer group.
    ///   - topics: The topics to subscribe to.
    ///   - autoOffsetReset: Where to start without a committed offset.
    ///   - commitMode: When offsets are committed.
    ///   - clientID: The client id, if any.
    ///   - shutdownTimeout: How long shutdown waits for the message being handled.
    ///   - maxBufferedMessages: How many messages are read ahead of the handler.
    ///   - maxBufferedBytes: How many bytes of messages are read ahead of the handler.
    ///   - tracing: Spans and trace context in record headers.
    ///   - backend: librdkafka (the default) or the local file queue.
    ///   - metrics: Messaging metrics through swift-metrics.
    ///   - handlerFailure: What the handler API does when the handler throws.
    ///   - properties: Raw librdkafka properties.
    public init(
        bootstrapServers: [String] = [],
        groupID: String,
        topics: [String],
        autoOffsetReset: AutoOffsetReset = .earliest,
        commitMode: CommitMode = .afterHandled,
        clientID: String? = nil,
        shutdownTimeout: Duration = .seconds(10),
        maxBufferedMessages: Int = 10_000,
        maxBufferedBytes: Int = 32 << 20,
        tracing: KafkaTracingConfiguration = .enabled,
        backend: KafkaBackend = .librdkafka,
        metrics: KafkaMetricsConfiguration = .enabled,
        handlerFailure: HandlerFailurePolicy = .stop,
        properties: [String: String] = [:]
    ) {
        self.tracing = tracing
        self.backend = backend
        self.metrics = metrics
        self.handlerFailure = handlerFailure
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        self.topics = topics
        self.autoOffsetReset = autoOffsetReset
        self.commitMode = commitMode
        self.clientID = clientID
        self.shutdownTimeout = shutdownTimeout
        self.maxBufferedMessages = maxBufferedMessages
        self.maxBufferedBytes = maxBufferedBytes
        self.properties = properties
    }

    /// The librdkafka properties this configuration stands for, raw properties last.
    var rdKafkaProperties: [(String, String)] {
        var result: [(String, String)] = [
            ("bootstrap.servers", bootstrapServers.joined(separator: ",")),
            ("group.id", groupID),
            ("auto.offset.reset", autoOffsetReset.rawValue),
        ]
        switch commitMode {
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
        result.append(contentsOf: properties.sorted { $0.key < $1.key })
        return result
    }
}
