import TracedKafka

extension KafkaConsumerConfiguration {
    /// Consumer settings that make group joins and rebalances quick on a test cluster (librdkafka's mock cluster
    /// needs a session timeout of at least 6 s).
    public static let fastGroupProperties: [String: String] = [
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "200",
        "topic.metadata.refresh.interval.ms": "500",
        "fetch.wait.max.ms": "50",
    ]

    /// A configuration the way the test suites read: a group that starts from the topics' beginning (tests send
    /// first, then read in a new group), with ``fastGroupProperties``.
    /// - Parameters:
    ///   - bootstrapServers: The brokers.
    ///   - group: The consumer group.
    ///   - topics: The topics to subscribe to.
    ///   - commitMode: How offsets are committed.
    ///   - properties: librdkafka properties, over ``fastGroupProperties``.
    /// - Returns: The configuration.
    public static func forTests(
        bootstrapServers: [String],
        group: String,
        topics: [String],
        commitMode: CommitMode = .afterHandled(interval: .milliseconds(100)),
        properties: [String: String] = [:]
    ) -> KafkaConsumerConfiguration {
        KafkaConsumerConfiguration(
            bootstrapServers: bootstrapServers,
            groupID: group,
            topics: topics,
            autoOffsetReset: .earliest,
            commitMode: commitMode,
            properties: fastGroupProperties.merging(properties) { $1 }
        )
    }
}
