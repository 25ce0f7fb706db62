import CoreMetrics
import Synchronization

/// Records a client's messaging metrics; keeps one metric object per series and bounds how many there are.
final class KafkaClientMetrics: Sendable {
    private let factory: (any MetricsFactory)?
    /// The dimensions every series of this client has: the system, the client's group, the server.
    private let common: [(String, String)]
    private let unitDimension: Bool
    /// The client's id, on the statistics gauges.
    private let clientID: String
    private let maxDestinations: Int
    private let series = Mutex<Series>(Series())

    private struct Series {
        var counters: [Key: Counter] = [:]
        var timers: [Key: Timer] = [:]
        var gauges: [Key: Gauge] = [:]
        var destinations: Set<KafkaTopicPartition> = []
    }

    /// A series: its label and dimensions, as looked up for each message (no unit or operation type).
    private struct Key: Hashable {
        var label: String
        var dimensions: [(String, String)]

        static func == (lhs: Key, rhs: Key) -> Bool {
            lhs.label == rhs.label && lhs.dimensions.elementsEqual(rhs.dimensions) { $0 == $1 }
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(label)
            hasher.combine(dimensions.count)
            for (name, value) in dimensions {
                hasher.combine(name)
                hasher.combine(value)
            }
        }
    }

    static let other = "_OTHER"

    /// `nil` factory when metrics are off, or when they would go to swift-metrics' no-op handler (nothing
    /// bootstrapped): then no message pays for building series that record nothing.
    init(configuration: KafkaMetricsConfiguration, clientID: String, groupID: String?, server: KafkaServerAddress?) {
        self.clientID = clientID
        let factory = configuration.factory ?? MetricsSystem.factory
        self.factory = configuration.isEnabled && !(factory is NOOPMetricsHandler) ? factory : nil
        self.isEnabled = self.factory != nil
        var common = [("messaging.system", "kafka")]
        if let groupID { common.append(("messaging.consumer.group.name", groupID)) }
        if let server {
            common.append(("server.address", server.host))
            if let port = server.port { common.append(("server.port", String(port))) }
        }
        self.common = common
        unitDimension = configuration.unitDimension
        maxDestinations = max(0, configuration.maxDestinations)
    }

    /// Whether anything is recorded; a stored flag, so the per-message checks do not copy the factory existential.
    let isEnabled: Bool

    /// When a measured operation (a send, a handler call) begins; `nil` when metrics are off, so no clock is read.
    func started() -> MetricsInstant? { isEnabled ? .now : nil }

    /// A record's outcome is known, or it was refused before it was queued: records the send's duration, under the
    /// partition it went to (or the one its sender chose, when it failed), and counts it as sent unless it was
    /// refused (`messaging.client.sent.messages` counts the records the producer tried to send to the broker).
    func recordSend(
        topic: String,
        chosenPartition: Int?,
        _ result: Result<KafkaDeliveryReport, KafkaError>,
        startedAt started: MetricsInstant,
        refused: Bool = false
    ) {
        guard isEnabled else { return }
        let partition: Int?, errorType: String?
        switch result {
        case .success(let report): (partition, errorType) = (report.partition, nil)
        case .failure(let error): (partition, errorType) = (chosenPartition, KafkaError.errorType(of: error))
        }
        let dimensions = self.dimensions(operation: "send", topic: topic, partition: partition, errorType: errorType)
        if !refused { counter("messaging.client.sent.messages", dimensions).increment() }
        operationDuration(dimensions, type: "send").recordNanoseconds(started.elapsed.nanoseconds)
    }

    /// An application's commit has its answer: counted in `tracedkafka.consumer.commits` (origin `application`)
    /// and timed in `messaging.client.operation.duration` (operation `commit`).
    func recordCommit(_ offsets: [KafkaTopicPartitionOffset], startedAt started: MetricsInstant?, error: (any Error)?) {
        guard let started, let first = offsets.first else { return }
        let singleTopic = offsets.allSatisfy { $0.topic == first.topic }
        let singlePartition = singleTopic && offsets.allSatisfy { $0.partition == first.partition }
        let dimensions = self.dimensions(
            operation: "commit",
            topic: singleTopic ? first.topic : nil,
            partition: singlePartition ? first.partition : nil,
            errorType: error.map(KafkaError.errorType(of:))
        )
        operationDuration(dimensions, type: "settle").recordNanoseconds(started.elapsed.nanoseconds)
        countCommit(origin: "application", error: error)
    }

    /// A commit the consumer made by itself (on its interval, at rebalance or shutdown) has its answer: counted in
    /// `tracedkafka.consumer.commits` (origin `consumer`).
    func recordOwnCommit(error: (any Error)?) {
        guard isEnabled else { return }
        countCommit(origin: "consumer", error: error)
    }

    private func countCommit(origin: String, error: (any Error)?) {
        var dimensions = self.dimensions(operation: "commit", topic: nil, partition: nil, errorType: error.map(KafkaError.errorType(of:)))
        dimensions.append(("tracedkafka.commit.origin", origin))
        counter("tracedkafka.consumer.commits", dimensions, unit: "{commit}").increment()
    }

    func recordConsumed(_ message: KafkaConsumerMessage) {
        guard isEnabled else { return }
        recordConsumed(CollectionOfOne(message))
    }

    /// Messages were handed to the application.
    func recordConsumed<Messages: Collection<KafkaConsumerMessage>>(_ messages: Messages) {
        guard isEnabled else { return }
        // One series lookup per run of messages from the same partition, not one per message.
        var start = messages.startIndex
        while start < messages.endIndex {
            let first = messages[start]
            let end = messages[start...].firstIndex { $0.partition != first.partition || $0.topic != first.topic } ?? messages.endIndex
            let dimensions = self.dimensions(operation: "receive", topic: first.topic, partition: first.partition, errorType: nil)
            counter("messaging.client.consumed.messages", dimensions).increment(by: messages.distance(from: start, to: end))
            start = end
        }
    }

    /// A handler call that began at `started` ended. A batch spanning topics has no destination, one spanning
    /// partitions no partition, as on its span.
    func recordProcess<Messages: Collection<KafkaConsumerMessage>>(
        _ messages: Messages,
        startedAt started: MetricsInstant?,
        error: (any Error)?
    ) {
        guard let started, let first = messages.first else { return }
        let duration = started.elapsed
        let topic = messages.allSatisfy { $0.topic == first.topic } ? first.topic : nil
        let partition = topic != nil && messages.allSatisfy { $0.partition == first.partition } ? first.partition : nil
        let dimensions = self.dimensions(operation: "process", topic: topic, partition: partition, errorType: error.map(KafkaError.errorType(of:)))
        timer("messaging.process.duration", dimensions).recordNanoseconds(duration.nanoseconds)
    }

    /// Sets a gauge from librdkafka's statistics; the series names this client (`messaging.client.id`).
    func gauge(_ label: String, unit: String, topic: String?, partition: Int?, value: Double) {
        guard isEnabled else { return }
        var dimensions = self.dimensions(operation: nil, topic: topic, partition: partition, errorType: nil)
        dimensions.append(("messaging.client.id", clientID))
        let gauge = metric(label, dimensions, \.gauges, unit: unit) { Gauge(label: $0, dimensions: $1, factory: $2) }
        gauge.record(value)
    }

    // MARK: - Series

    private func dimensions(operation: String?, topic: String?, partition: Int?, errorType: String?) -> [(String, String)] {
        var result = common
        if let operation { result.append(("messaging.operation.name", operation)) }
        if let topic {
            let bounded = bound(topic: topic, partition: partition)
            result.append(("messaging.destination.name", bounded.topic))
            if let partition = bounded.partition { result.append(("messaging.destination.partition.id", partition)) }
        }
        if let errorType { result.append(("error.type", errorType)) }
        return result
    }

    /// The destination as recorded: itself while there is room for new series, `_OTHER` once there is not.
    private func bound(topic: String, partition: Int?) -> (topic: String, partition: String?) {
        let key = KafkaTopicPartition(topic: topic, partition: partition ?? -1)
        let admitted = series.withLock { series in
            if series.destinations.contains(key) { return true }
            guard series.destinations.count < maxDestinations else { return false }
            series.destinations.insert(key)
            return true
        }
        return admitted ? (topic, partition.map(String.init)) : (Self.other, nil)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)], unit: String = "{message}") -> Counter {
        metric(label, dimensions, \.counters, unit: unit) { Counter(label: $0, dimensions: $1, factory: $2) }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)], operationType: String? = nil) -> Timer {
        metric(label, dimensions, \.timers, unit: "s", operationType: operationType) {
            Timer(label: $0, dimensions: $1, preferredDisplayUnit: .seconds, factory: $2)
        }
    }

    /// `messaging.client.operation.duration`, which also names the operation's type.
    private func operationDuration(_ dimensions: [(String, String)], type: String) -> Timer {
        timer("messaging.client.operation.duration", dimensions, operationType: type)
    }

    /// The metric object of a series, made on first use. Its unit (when units go in a dimension,
    /// ``KafkaMetricsConfiguration/unitDimension``) and operation type follow from the label and the operation name,
    /// so they are added only when the series is made, never to the key looked up for each message.
    private func metric<Metric: Sendable>(
        _ label: String,
        _ dimensions: [(String, String)],
        _ table: WritableKeyPath<Series, [Key: Metric]>,
        unit: String,
        operationType: String? = nil,
        make: (String, [(String, String)], any MetricsFactory) -> Metric
    ) -> Metric {
        let key = Key(label: label, dimensions: dimensions)
        return series.withLock { series in
            if let metric = series[keyPath: table][key] { return metric }
            var dimensions = dimensions
            if let operationType { dimensions.append(("messaging.operation.type", operationType)) }
            if unitDimension { dimensions.append(("unit", unit)) }
            let metric = make(label, dimensions, factory!)
            series[keyPath: table][key] = metric
            return metric
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds, never negative.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// When a measured operation began, as a plain value: the time since the process's first reading of
/// `ContinuousClock`. (`ContinuousClock.Instant` is resilient outside the standard library, so a struct holding one,
/// such as a send's state, was copied and tested through value witnesses on every record.)
struct MetricsInstant: Sendable {
    private static let origin = ContinuousClock.now
    private let sinceOrigin: Duration

    /// Now.
    static var now: MetricsInstant { MetricsInstant(sinceOrigin: .now - origin) }

    /// The time since this instant.
    var elapsed: Duration { (ContinuousClock.now - Self.origin) - sinceOrigin }
}
