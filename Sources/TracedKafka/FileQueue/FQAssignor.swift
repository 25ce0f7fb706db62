/// How a file-queue group deals partitions: each member computes the same answer from the live members, their
/// subscriptions and the topics' partition counts, and takes its own share.
///
/// Every partition of the topics some member subscribes to, in (topic, partition) order, goes to the next member in
/// a circular walk over the members sorted by id, skipping those that do not subscribe to its topic (Kafka's
/// round-robin assignor). When every member subscribes to the same topics, partition `k` of that order goes to
/// member `k mod n`.
enum FQAssignor {
    /// The partitions `member` owns.
    /// - Parameters:
    ///   - member: The member whose share is asked for.
    ///   - members: The live members (in any order), `member` among them.
    ///   - partitionCounts: The partition count of each topic to deal (topics nobody subscribes to are skipped).
    static func share(of member: String, among members: [FQMember], partitionCounts: [String: Int]) -> [KafkaTopicPartition] {
        let members = members.sorted { $0.id < $1.id }
        guard !members.isEmpty else { return [] }
        var share: [KafkaTopicPartition] = []
        var next = 0
        for topic in partitionCounts.keys.sorted() {
            guard let count = partitionCounts[topic], members.contains(where: { $0.subscription.contains(topic) }) else { continue }
            for partition in 0..<count {
                var index = next
                while !members[index].subscription.contains(topic) { index = (index + 1) % members.count }
                if members[index].id == member { share.append(KafkaTopicPartition(topic: topic, partition: partition)) }
                next = (index + 1) % members.count
            }
        }
        return share
    }
}
