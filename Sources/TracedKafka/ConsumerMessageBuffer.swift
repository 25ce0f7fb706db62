import Foundation

/// The hand-over between a backend's fetch thread and the one task iterating ``KafkaConsumer/messages``.
///
/// Bounded by a message count and by bytes (keys, values and headers): the fetch thread blocks (it is a dedicated
/// thread, never the cooperative pool) while the buffer is full, so a slow handler pauses fetching instead of
/// growing memory. A batch is taken while there is room, so the bytes may pass their bound by one batch; a fetcher
/// that asks ``room()`` first and fetches only that much passes it by one message at most.
final class ConsumerMessageBuffer: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private let byteCapacity: Int
    // Guarded by `condition`.
    private var items: [KafkaConsumerMessage] = []
    private var head = 0
    private var bytes = 0
    private var waiter: CheckedContinuation<KafkaConsumerMessage?, any Error>?
    private var finished = false
    private var failure: KafkaError?
    /// Whether the fetch thread waits for room; it is woken once the buffer has drained to `resumeBelow` (and half
    /// its bytes), not per message taken (which cost a wake-up and a lock hand-off per message while the handler
    /// was the slower side).
    private var fetcherWaiting = false
    private let resumeBelow: Int
    private let resumeBelowBytes: Int

    init(capacity: Int, byteCapacity: Int = .max) {
        self.capacity = max(1, capacity)
        self.byteCapacity = max(1, byteCapacity)
        self.resumeBelow = (self.capacity + 1) / 2
        self.resumeBelowBytes = self.byteCapacity / 2 + 1
    }

    private var count: Int { items.count - head }

    private var isFull: Bool { count >= capacity || bytes >= byteCapacity }

    /// The bytes a message holds in the buffer's accounting: key, value, header keys and values.
    static func size(of message: KafkaConsumerMessage) -> Int {
        var size = (message.key?.count ?? 0) + (message.value?.count ?? 0)
        for header in message.headers { size += header.keyByteCount + (header.value?.count ?? 0) }
        return size
    }

    // MARK: - Fetch side

    /// Adds messages in order; blocks while the buffer is full until there is room or `shouldStop()` is true.
    /// Messages offered after ``finish(error:deliveringBuffered:)`` are dropped (they were never handled, so never committed).
    func append(_ batch: [KafkaConsumerMessage], shouldStop: () -> Bool) {
        var rest = batch[...]
        while !rest.isEmpty {
            condition.lock()
            while isFull && !finished && !shouldStop() {
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
            // Messages go in while there is room by count and by bytes (at least one while not full).
            while let message = rest.first, count < capacity, bytes < byteCapacity {
                items.append(message)
                bytes += Self.size(of: message)
                rest = rest.dropFirst()
            }
            condition.unlock()
            if let (waiter, message) = handOver { waiter.resume(returning: message) }
        }
    }

    /// How many messages and bytes fit before the buffer is full; (0, 0) once it is full or finished.
    func room() -> (count: Int, bytes: Int) {
        condition.lock()
        defer { condition.unlock() }
        guard !finished, !isFull else { return (0, 0) }
        return (capacity - count, byteCapacity - bytes)
    }

    /// How many messages and bytes it holds.
    func contents() -> (count: Int, bytes: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (count, bytes)
    }

    /// Waits until the buffer has drained (to half its bounds), it finished, or `deadline` passed, whichever is first.
    func waitForRoom(until deadline: ContinuousClock.Instant) {
        condition.lock()
        defer { condition.unlock() }
        let clock = ContinuousClock()
        while isFull && !finished && clock.now < deadline {
            fetcherWaiting = true
            let wait = clock.now.duration(to: deadline)
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait.milliseconds + 1) / 1000))
        }
        fetcherWaiting = false
    }

    /// Drops buffered messages of partitions this consumer no longer owns.
    func drop(partitions: Set<KafkaTopicPartition>) {
        guard !partitions.isEmpty else { return }
        condition.lock()
        items = items[head...].filter { !partitions.contains(KafkaTopicPartition(topic: $0.topic, partition: $0.partition)) }
        head = 0
        bytes = items.reduce(0) { $0 + Self.size(of: $1) }
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
                bytes = 0
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
        bytes -= Self.size(of: message)
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        if fetcherWaiting && count < resumeBelow && bytes < resumeBelowBytes {
            fetcherWaiting = false
            condition.signal()
        }
        return message
    }
}
