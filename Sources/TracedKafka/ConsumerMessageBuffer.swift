import Foundation

/// The hand-over between a backend's fetch thread and the one task iterating ``KafkaConsumer/messages``.
///
/// The fetch thread blocks (it is a dedicated thread, never the cooperative pool) while the buffer is full, so a
/// slow handler pauses fetching instead of growing memory.
final class ConsumerMessageBuffer: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    // Guarded by `condition`.
    private var items: [KafkaConsumerMessage] = []
    private var head = 0
    private var waiter: CheckedContinuation<KafkaConsumerMessage?, any Error>?
    private var finished = false
    private var failure: KafkaError?
    /// Whether the fetch thread waits for room; it is woken once the buffer has drained to `resumeBelow`, not per
    /// message taken (which cost a wake-up and a lock hand-off per message while the handler was the slower side).
    private var fetcherWaiting = false
    private let resumeBelow: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        self.resumeBelow = (self.capacity + 1) / 2
    }

    private var count: Int { items.count - head }

    // MARK: - Fetch side

    /// Adds messages in order; blocks while the buffer is full until there is room or `shouldStop()` is true.
    /// Messages offered after ``finish(error:deliveringBuffered:)`` are dropped (they were never handled, so never committed).
    func append(_ batch: [KafkaConsumerMessage], shouldStop: () -> Bool) {
        var rest = batch[...]
        while !rest.isEmpty {
            condition.lock()
            while count >= capacity && !finished && !shouldStop() {
                fetcherWaiting = true
                _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1))
            }
            fetcherWaiting = false
            guard !finished, !shouldStop() else {
                condition.unlock()
                return
            }
            var handOver: (CheckedContinuation<KafkaConsumerMessage?, any Error>, KafkaConsumerMessage)?
            if let waiter {
                self.waiter = nil
                handOver = (waiter, rest.removeFirst())
            }
            let room = capacity - count
            items.append(contentsOf: rest.prefix(room))
            rest = rest.dropFirst(room)
            condition.unlock()
            if let (waiter, message) = handOver { waiter.resume(returning: message) }
        }
    }

    /// Drops buffered messages of partitions this consumer no longer owns.
    func drop(partitions: Set<KafkaTopicPartition>) {
        guard !partitions.isEmpty else { return }
        condition.lock()
        items = items[head...].filter { !partitions.contains(KafkaTopicPartition(topic: $0.topic, partition: $0.partition)) }
        head = 0
        condition.broadcast()
        condition.unlock()
    }

    /// Ends the sequence: buffered messages are dropped (or, with `deliveringBuffered`, handed out first), the
    /// iterator then gets `nil` (or `error`).
    func finish(error: KafkaError? = nil, deliveringBuffered: Bool = false) {
        condition.lock()
        let waiter = self.waiter
        self.waiter = nil
        if !finished {
            finished = true
            failure = error
            if !deliveringBuffered {
                items = []
                head = 0
            }
        }
        condition.broadcast()
        condition.unlock()
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    // MARK: - Iterator side

    /// The next message, or `nil` once finished. Throws `CancellationError` when the waiting task is cancelled.
    func next() async throws -> KafkaConsumerMessage? {
        if let message = takeIfReady() { return message }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                condition.lock()
                if count > 0 {
                    let message = popLocked()
                    condition.unlock()
                    return continuation.resume(returning: message)
                }
                if finished {
                    let failure = self.failure
                    condition.unlock()
                    return continuation.resume(with: failure.map { .failure($0) } ?? .success(nil))
                }
                if Task.isCancelled {
                    condition.unlock()
                    return continuation.resume(throwing: CancellationError())
                }
                waiter = continuation
                condition.unlock()
            }
        } onCancel: {
            condition.lock()
            let waiter = self.waiter
            self.waiter = nil
            condition.unlock()
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Up to `limit` buffered messages, without suspending; one lock for all of them.
    func takeAvailable(_ limit: Int) -> [KafkaConsumerMessage] {
        guard limit > 0 else { return [] }
        condition.lock()
        defer { condition.unlock() }
        var taken: [KafkaConsumerMessage] = []
        taken.reserveCapacity(Swift.min(limit, count))
        while taken.count < limit, count > 0 { taken.append(popLocked()) }
        return taken
    }

    /// A buffered message without suspending, or `nil` when none is ready.
    private func takeIfReady() -> KafkaConsumerMessage? {
        condition.lock()
        defer { condition.unlock() }
        guard count > 0 else { return nil }
        return popLocked()
    }

    private func popLocked() -> KafkaConsumerMessage {
        let message = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        if fetcherWaiting && count < resumeBelow {
            fetcherWaiting = false
            condition.signal()
        }
        return message
    }
}
