import Synchronization

/// The file-queue admin backend: topics are directories of the queue.
final class FQAdmin: KafkaAdminBackend {
    private let directory: FQDirectory
    private let closed = Atomic(false)

    init(options: KafkaFileQueueConfiguration) throws {
        directory = try FQDirectory(path: options.directory)
    }

    func createTopic(_ name: String, partitions: Int, replicationFactor: Int?, configs: [String: String], timeout: Duration) async throws {
        try requireOpen()
        guard configs.isEmpty else {
            throw KafkaError(code: .configuration, reason: "The file queue has no topic configuration (asked for \(configs.keys.sorted()))")
        }
        guard try directory.createTopic(name, partitions: partitions).created else {
            throw KafkaError(code: .topicAlreadyExists, reason: "Topic '\(name)' already exists in \(directory.root)")
        }
    }

    func deleteTopic(_ name: String, timeout: Duration) async throws {
        try requireOpen()
        try directory.deleteTopic(name)
    }

    func listTopics(timeout: Duration) async throws -> [String] {
        try requireOpen()
        // Not the directories a create or a delete works in (a topic may itself begin with a dot).
        return FQFile.names(in: "\(directory.root)/topics").filter { !$0.hasPrefix(".staging-") && !$0.hasPrefix(".deleting-") }.sorted()
    }

    func describeTopic(_ name: String, timeout: Duration) async throws -> KafkaTopicDescription {
        try requireOpen()
        guard let count = try directory.partitionCount(of: name) else {
            throw KafkaError(code: .unknownPartition, reason: "No topic '\(name)' in \(directory.root)")
        }
        // One copy of each partition, in this directory: reported as broker 0.
        let partitions = (0..<count).map { KafkaTopicDescription.Partition(id: $0, leader: 0, replicas: [0], inSyncReplicas: [0]) }
        return KafkaTopicDescription(name: name, partitions: partitions, configs: [:])
    }

    func close() async { closed.store(true, ordering: .relaxed) }

    private func requireOpen() throws {
        if closed.load(ordering: .relaxed) { throw KafkaError.shutDown("The admin client") }
    }
}
