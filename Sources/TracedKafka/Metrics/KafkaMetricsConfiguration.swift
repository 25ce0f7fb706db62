import CoreMetrics

/// Messaging metrics (swift-metrics), named, dimensioned and in the units of OpenTelemetry's messaging conventions
/// (semantic conventions v1.44.0), and two gauges and a counter of the library's own (`tracedkafka.*`):
///
/// | metric | kind | unit | recorded |
/// |---|---|---|---|
/// | `messaging.client.sent.messages` | counter | `{message}` | per record sent, when its outcome is known |
/// | `messaging.client.operation.duration` | timer | `s` | send → acknowledgement (or failure), per record; an application's commit |
/// | `messaging.client.consumed.messages` | counter | `{message}` | per message handed to the application |
/// | `messaging.process.duration` | timer | `s` | per handler call of ``KafkaConsumer/run(_:)`` / ``KafkaConsumer/runBatches(maxMessages:_:)`` |
/// | `tracedkafka.consumer.commits` | counter | `{commit}` | per commit answered, by origin (`application`, `consumer`) |
/// | `tracedkafka.producer.queued.messages` | gauge | `{message}` | per producer: librdkafka's queue depth, from its statistics |
/// | `tracedkafka.consumer.lag` | gauge | `{message}` | per consumer and assigned partition, from librdkafka's statistics |
/// | `tracedkafka.client.queued.operations`, `.requests.sent`, `.requests.size`, `.responses.received`, `.responses.size`, `.metadata.topics` | gauge | `{operation}`, `{request}`, `By`, `{response}`, `By`, `{topic}` | per client: librdkafka's totals (`replyq`, `tx`, `tx_bytes`, `rx`, `rx_bytes`, `metadata_cache_cnt`) |
/// | `tracedkafka.producer.queued.size`, `.messages.sent`, `.messages.size` | gauge | `By`, `{message}`, `By` | per producer: `msg_size`, `txmsgs`, `txmsg_bytes` |
/// | `tracedkafka.consumer.messages.received`, `.messages.size` | gauge | `{message}`, `By` | per consumer: `rxmsgs`, `rxmsg_bytes` |
///
/// Dimensions: `messaging.system`, `messaging.operation.name`, `messaging.operation.type` (on
/// `messaging.client.operation.duration`), `messaging.destination.name`, `messaging.destination.partition.id`,
/// `messaging.consumer.group.name` (consumers), `server.address` and `server.port` (librdkafka's first bootstrap
/// server), `messaging.client.id` (the gauges), `error.type` on failures, and `unit` (``unitDimension``).
/// Cardinality is bounded: past ``maxDestinations`` distinct topic/partition pairs, further ones are counted under the
/// destination `_OTHER`.
public struct KafkaMetricsConfiguration: Sendable {
    /// Whether any metric is recorded.
    public var isEnabled: Bool
    /// Where metrics go; `nil` uses `MetricsSystem.factory` (whatever the process bootstrapped), resolved at creation.
    public var factory: (any MetricsFactory)?
    /// How often librdkafka reports its statistics (`statistics.interval.ms`), which feed the gauges (queue depth,
    /// consumer lag, the client's totals); `nil` (the default) turns them off. The file queue has no such statistics.
    public var statisticsInterval: Duration?
    /// How many distinct topic/partition pairs get series of their own.
    public var maxDestinations: Int
    /// Whether each metric carries its unit (`s`, `{message}`, `{commit}`) in a dimension named `unit`: swift-otel
    /// takes that dimension as the instrument's unit (swift-metrics has no other way to say one), so an OTLP backend
    /// shows the conventions' units. A backend that keeps every dimension as a label (Prometheus) shows it as a
    /// label; turn it off there.
    public var unitDimension: Bool

    /// Creates a configuration.
    /// - Parameters:
    ///   - isEnabled: Whether any metric is recorded.
    ///   - factory: Where metrics go; `nil` for `MetricsSystem.factory`.
    ///   - statisticsInterval: How often librdkafka reports statistics for the gauges; `nil` for none.
    ///   - maxDestinations: How many topic/partition pairs get series of their own.
    ///   - unitDimension: Whether each metric carries its unit in a dimension named `unit` (swift-otel's way).
    public init(
        isEnabled: Bool = true,
        factory: (any MetricsFactory)? = nil,
        statisticsInterval: Duration? = nil,
        maxDestinations: Int = 1_000,
        unitDimension: Bool = true
    ) {
        self.isEnabled = isEnabled
        self.factory = factory
        self.statisticsInterval = statisticsInterval
        self.maxDestinations = maxDestinations
        self.unitDimension = unitDimension
    }

    /// Metrics on, to `MetricsSystem.factory`, without librdkafka's statistics.
    public static var enabled: KafkaMetricsConfiguration { KafkaMetricsConfiguration() }
    /// No metrics.
    public static var disabled: KafkaMetricsConfiguration { KafkaMetricsConfiguration(isEnabled: false) }

    /// `statistics.interval.ms` for librdkafka when metrics and statistics are on.
    var rdKafkaStatisticsProperty: (String, String)? {
        guard isEnabled, let interval = statisticsInterval else { return nil }
        return ("statistics.interval.ms", String(max(1, interval.milliseconds)))
    }
}
