import Synchronization
import TracedKafka

/// A deadline passed before the awaited work finished.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was being waited for.
    public let what: String

    /// Creates the error.
    /// - Parameter what: What was being waited for.
    public init(what: String) { self.what = what }

    /// "Timed out: …".
    public var description: String { "Timed out: \(what)" }
}

/// Runs `body` with a deadline, so a test fails with ``TimedOut`` instead of hanging.
/// - Parameters:
///   - what: What is awaited, for the error.
///   - limit: The deadline.
///   - body: The work.
/// - Returns: What `body` returns.
/// - Throws: ``TimedOut`` at the deadline, or what `body` throws.
public func withDeadline<T: Sendable>(
    _ what: String,
    _ limit: Duration = .seconds(90),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let result = try await group.next(), let value = result else { throw TimedOut(what: what) }
        return value
    }
}

/// Runs a producer's `run()` around `body`, then shuts it down gracefully and waits until it has delivered.
/// - Parameters:
///   - producer: The producer.
///   - body: The work, given the producer.
/// - Returns: What `body` returns.
/// - Throws: What `body` or `run()` throws.
public func withRunning<T: Sendable>(
    _ producer: KafkaProducer,
    _ body: @escaping @Sendable (KafkaProducer) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await producer.run()
            return nil
        }
        let result: T
        do {
            result = try await body(producer)
        } catch {
            producer.triggerGracefulShutdown()
            throw error
        }
        producer.triggerGracefulShutdown()
        try await group.waitForAll()
        return result
    }
}

/// Runs `consumer.run(handler)` until `count` messages were handled, then shuts the consumer down gracefully.
/// - Parameters:
///   - consumer: The consumer.
///   - count: How many messages to handle.
///   - limit: The deadline.
///   - handler: Called for each message, inside its process span.
/// - Returns: The handled messages, in order.
/// - Throws: ``TimedOut``, or what the handler or the consumer throws.
@discardableResult
public func handle(
    _ consumer: KafkaConsumer,
    count: Int,
    limit: Duration = .seconds(90),
    _ handler: nonisolated(nonsending) @escaping @Sendable (KafkaConsumerMessage) async throws -> Void = { _ in }
) async throws -> [KafkaConsumerMessage] {
    let seen = Mutex<[KafkaConsumerMessage]>([])
    try await withDeadline("handling \(count) messages", limit) {
        try await consumer.run { message in
            try await handler(message)
            let done = seen.withLock { seen in
                seen.append(message)
                return seen.count == count
            }
            if done { consumer.triggerGracefulShutdown() }
        }
    }
    return seen.withLock { $0 }
}

/// Runs the consumer and reads `count` messages from `consumer.messages`, then shuts it down gracefully the way a
/// service would: the loop runs on until the sequence ends, so the last message counts as handled.
/// - Parameters:
///   - consumer: The consumer.
///   - count: How many messages to read.
///   - limit: The deadline.
///   - onMessage: Called for each message before the next is read.
/// - Returns: The messages, in order.
/// - Throws: ``TimedOut``, or what `onMessage` or the consumer throws.
public func consume(
    _ consumer: KafkaConsumer,
    count: Int,
    limit: Duration = .seconds(90),
    onMessage: nonisolated(nonsending) @escaping @Sendable (KafkaConsumerMessage) async throws -> Void = { _ in }
) async throws -> [KafkaConsumerMessage] {
    try await withDeadline("consuming \(count) messages", limit) {
        try await withThrowingTaskGroup(of: [KafkaConsumerMessage].self) { group in
            group.addTask {
                try await consumer.run()
                return []
            }
            var received: [KafkaConsumerMessage] = []
            if count > 0 {
                for try await message in consumer.messages {
                    try await onMessage(message)
                    received.append(message)
                    if received.count == count { consumer.triggerGracefulShutdown() }
                }
            } else {
                consumer.triggerGracefulShutdown()
            }
            try await group.waitForAll()
            return received
        }
    }
}

/// ``handle(_:count:limit:_:)`` for a test that moves the consumer about in one partition: before each message is
/// handled it records the consumer's position in `partition`, and it tells the handler how many messages it has been
/// given, this one included (1 for the first).
/// - Parameters:
///   - consumer: The consumer.
///   - count: How many messages to handle.
///   - partition: The partition whose position is recorded.
///   - limit: The deadline.
///   - handler: Called for each message, inside its process span, with its pass number.
/// - Returns: The handled messages, in order, and the position before each (nil where `position` threw).
/// - Throws: ``TimedOut``, or what the handler or the consumer throws.
public func handleTrackingPosition(
    _ consumer: KafkaConsumer,
    count: Int,
    in partition: KafkaTopicPartition,
    limit: Duration = .seconds(90),
    _ handler: nonisolated(nonsending) @escaping @Sendable (_ pass: Int, KafkaConsumerMessage) async throws -> Void
) async throws -> (messages: [KafkaConsumerMessage], positions: [Int64?]) {
    let positions = LockedValue<[Int64?]>([])
    let messages = try await handle(consumer, count: count, limit: limit) { message in
        let position = try? consumer.position(partition)
        let pass = positions.withLock { positions in
            positions.append(position)
            return positions.count
        }
        try await handler(pass, message)
    }
    return (messages, positions.withLock { $0 })
}
