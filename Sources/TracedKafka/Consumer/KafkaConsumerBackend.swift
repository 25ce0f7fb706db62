/// The boundary under ``KafkaConsumer``: what a backend (librdkafka, or the local file queue) must do. Its state
/// lives in the ``ConsumerCore`` it was made with; a backend is I/O: its fetcher reports into the core (messages,
/// assignments, revocations, losses, failures) and carries out the core's requests, and these calls do the rest.
protocol KafkaConsumerBackend: AnyObject, Sendable {
    /// Spawns the fetcher thread; called once, when the core says so. The thread reports
    /// ``ConsumerCore/fetcherStopped()`` as its last act.
    func spawnFetcher()
    /// Cuts the fetcher's current wait short, so it sees a request now.
    func wakeFetcher()
    /// Subscribes a group member to `topics` instead (none: unsubscribes): changes the core's subscription
    /// (``ConsumerCore/subscribe(_:wake:)``), then the group's, one change at a time; the group then revokes and
    /// assigns partitions through the usual path. Back to the old subscription when the group refuses.
    /// - Throws: ``KafkaError/Code/shutDown`` once closed, what the core throws, or the group's refusal.
    func subscribe(_ topics: [String]) async throws
    /// Commits positions and waits for the group coordinator's answer.
    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws
    /// The group's committed offsets (the next offset to read) of the partitions that have one.
    func committed(_ partitions: [KafkaTopicPartition], timeout: Duration) async throws -> [KafkaTopicPartition: Int64]
    /// The next offset the fetcher will fetch from an owned partition, when the core knows of nothing later.
    func fetchPosition(_ partition: KafkaTopicPartition) throws -> Int64?
    /// Stops fetching from these partitions until resumed.
    func pause(_ partitions: [KafkaTopicPartition]) throws
    /// Resumes fetching from these partitions.
    func resume(_ partitions: [KafkaTopicPartition]) throws
    /// The group's metadata (generation, member id) for a transaction's offsets.
    /// - Throws: ``KafkaError/Code/unsupported`` on a backend without transactions.
    func groupMetadata() throws -> RDGroupMetadata
    /// Called once the fetcher has stopped: commits what was stored (per the commit mode), leaves the group and
    /// frees resources. Safe to call more than once.
    func close() async
}
