import TracedKafka

/// What the two members of one consumer group received in ``splitBetweenTwoMembers(_:_:topic:partitions:total:producer:limit:)``.
public struct GroupSplit: Sendable {
    /// The messages each member received, in order: member 0 is the first, member 1 the second.
    public let received: [Int: [KafkaConsumerMessage]]
    /// The values that were sent, `m0` to `m<total - 1>`.
    public let sent: [String]

    /// Every message either member received.
    public var all: [KafkaConsumerMessage] { received.values.flatMap { $0 } }

    /// The partitions that `member` (0 or 1) received messages from.
    /// - Parameter member: 0 for the first member, 1 for the second.
    public func partitions(of member: Int) -> Set<Int> { Set(received[member, default: []].map(\.partition)) }

    /// Whether the members together received every value sent, each exactly once.
    public var everyValueOnce: Bool {
        all.count == sent.count && all.compactMap(\.valueString).sorted() == sent.sorted()
    }

    /// Whether each member received messages, from partitions the other received none from.
    public var partitionsSplit: Bool {
        !partitions(of: 0).isEmpty && !partitions(of: 1).isEmpty && partitions(of: 0).isDisjoint(with: partitions(of: 1))
    }
}

extension GroupSplit: CustomStringConvertible {
    /// How many messages each member received and from which partitions, for a failed expectation.
    public var description: String {
        let distinct = Set(all.compactMap(\.valueString)).count
        return "received \(all.count) (\(distinct) distinct) of \(sent.count) sent; "
            + "member 0: \(received[0]?.count ?? 0) from \(partitions(of: 0).sorted()), "
            + "member 1: \(received[1]?.count ?? 0) from \(partitions(of: 1).sorted())"
    }
}

/// Failure of ``splitBetweenTwoMembers(_:_:topic:partitions:total:producer:limit:)``, saying where it stopped: the
/// group never settling, or messages missing after it did.
public struct GroupSplitFailed: Error, CustomStringConvertible {
    /// What was thrown (``TimedOut`` at the deadline).
    public let error: any Error
    /// Whether the records were sent, each member's partitions and how many messages each received.
    public let stage: String

    /// "<error>; stopped at: <stage>".
    public var description: String { "\(error); stopped at: \(stage)" }
}

/// Runs two members of one consumer group until together they have received `total` messages, then shuts both down.
///
/// It sends only once the group has settled: both members own partitions, none is owned by both, and together they
/// own all `partitions` of `topic`. Then it sends `total` records with values `m0`, `m1`, … and keys spread over the
/// partitions, with a producer of its own. Assignments are read from the members' events (both streams are read to
/// their end).
/// - Parameters:
///   - first: The first member and its events (from `KafkaConsumer.makeConsumerWithEvents`).
///   - second: The second member and its events, in the same group.
///   - topic: The topic both subscribe to.
///   - partitions: How many partitions `topic` has.
///   - total: How many records to send and receive.
///   - producer: The configuration of the producer that sends them.
///   - limit: The deadline for all of it.
/// - Returns: What each member received and what was sent, for the test to check.
/// - Throws: ``GroupSplitFailed``, with what was thrown (``TimedOut`` at the deadline) and where it stopped.
public func splitBetweenTwoMembers(
    _ first: (KafkaConsumer, AsyncStream<KafkaConsumerEvent>),
    _ second: (KafkaConsumer, AsyncStream<KafkaConsumerEvent>),
    topic: String,
    partitions: Int,
    total: Int,
    producer: KafkaProducerConfiguration,
    limit: Duration = .seconds(90)
) async throws -> GroupSplit {
    let assignments = LockedValue<[Int: Set<KafkaTopicPartition>]>([:])
    let received = LockedValue<[Int: [KafkaConsumerMessage]]>([:])
    let produced = LockedValue(false)
    let sent = (0..<total).map { "m\($0)" }
    let members = [first, second]
    do {
        try await withDeadline("group split", limit) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, (consumer, events)) in members.enumerated() {
                    group.addTask { try await consumer.run() }
                    group.addTask {
                        for await event in events {
                            switch event.kind {
                            case .partitionsAssigned: assignments.withLock { $0[index] = Set(event.partitions) }
                            case .partitionsRevoked, .partitionsLost: assignments.withLock { $0[index] = [] }
                            default: break
                            }
                        }
                    }
                    group.addTask {
                        for try await message in consumer.messages {
                            let done = received.withLock { all in
                                all[index, default: []].append(message)
                                return all.values.map(\.count).reduce(0, +) >= total
                            }
                            if done { for (member, _) in members { member.triggerGracefulShutdown() } }
                        }
                    }
                }
                // Send only once the group has settled.
                while !assignments.withLock({ owned in
                    let a = owned[0] ?? [], b = owned[1] ?? []
                    return !a.isEmpty && !b.isEmpty && a.isDisjoint(with: b) && a.union(b).count == partitions
                }) {
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await withRunning(try KafkaProducer(configuration: producer)) { producer in
                    for (index, value) in sent.enumerated() {
                        _ = try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "key-\(index)", value: value))
                    }
                    try await producer.flush()
                }
                produced.withLock { $0 = true }
                try await group.waitForAll()
            }
        }
    } catch {
        let owned = assignments.withLock { $0.mapValues { $0.map(\.partition).sorted() } }
        let counts = received.withLock { $0.mapValues(\.count) }
        throw GroupSplitFailed(
            error: error,
            stage: "produced: \(produced.withLock { $0 }), assignments: \(owned), received per consumer: \(counts)"
        )
    }
    return GroupSplit(received: received.withLock { $0 }, sent: sent)
}
