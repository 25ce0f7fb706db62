import CoreMetrics

/// Messaging metrics (swift-metrics), named and dimensioned after OpenTelemetry's messaging conventions:
///
/// | metric | kind | recorded |
/// |---|---|---|
/// | `messaging.client.sent.messages` | counter | per record sent, when its outcome is known |
/// | `messaging.client.operation.duration` | timer | send → acknowledgement (or failure), per record |
/// | `messaging.client.consumed.messages` | counter | per message handed to the application |
/// | `messaging.process.duration` | timer | per handler call of ``KafkaConsumer/run(_:)`` / ``KafkaConsumer/runBatches(maxMessages:_:)`` |
/// | `messaging.kafka.client.queued.messages` | gauge | librdkafka's producer queue depth, from its statistics |
/// | `messaging.kafka.consumer.lag` | gauge | per assigned partition, from librdkafka's statistics |
///
/// Dimensions: `messaging.system`, `messaging.operation.name`, `messaging.destination.name`,
/// `messaging.destination.partition.id`, `messaging.consumer.group.name` (consumers), and `error.type` on failures.
/// Cardinality is bounded: past ``maxDestinations`` distinct topic/partition pairs, further ones are counted under the
/// destination `_OTHER`.
public struct KafkaMetricsConfiguration: Sendable {
    /// Whether any metric is recorded.
    public var isEnabled: Bool
    /// Where metrics go; `nil` uses `MetricsSystem.factory` (whatever the process bootstrapped), resolved at creation.
    public var factory: (any MetricsFactory)?
    /// How often librdkafka reports its statistics (`statistics.interval.ms`), which feed the queue-depth and
    /// consumer-lag gauges; `nil` (the default) turns them off. The file queue has no such statistics.
    public var statisticsInterval: Duration?
    /// How many distinct topic/partition pairs get series of their own.
    public var maxDestinations: Int

    /// Creates a configuration.
    /// - Parameters:
    ///   - isEnabled: Whether any metric is recorded.
    ///   - factory: Where metrics go; `nil` for `MetricsSystem.factory`.
    ///   - statisticsInterval: How often librdkafka reports statistics for the gauges; `nil` for none.
    ///   - maxDestinations: How many topic/partition pairs get series of their own.
    public init(
        isEnabled: Bool = true,
        factory: (any MetricsFactory)? = nil,
        statisticsInterval: Duration? = nil,
        maxDestinations: Int = 1_000
    ) {
        self.isEnabled = isEnabled
        self.factory = factory
        self.statisticsInterval = statisticsInterval
        self.maxDestinations = maxDestinations
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
