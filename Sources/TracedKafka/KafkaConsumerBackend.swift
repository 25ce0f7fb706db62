/// The boundary under ``KafkaConsumer``: what a backend (librdkafka, or the local file queue) must do.
protocol KafkaConsumerBackend: AnyObject, Sendable {
    /// Starts fetching into the buffer the backend was made with. Called once.
    func start()
    /// Stores the offsets after these messages for the background commit (the highest per partition).
    func storeOffsets(after messages: [KafkaConsumerMessage])
    /// Commits positions and waits for the group coordinator's answer.
    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws
    /// Stops fetching from these partitions until resumed.
    func pause(_ partitions: [KafkaTopicPartition]) throws
    /// Resumes fetching from these partitions.
    func resume(_ partitions: [KafkaTopicPartition]) throws
    /// Stops fetching, commits what was handled (per the commit mode), leaves the group and frees resources.
    /// Safe to call more than once.
    func close() async
}
