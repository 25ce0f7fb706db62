import Foundation
import Logging

/// The file-queue producer backend.
///
/// `offer` queues a record in memory (no room beyond ``KafkaFileQueueConfiguration/maxQueuedRecords``);
/// one writer thread takes everything queued, groups it per partition, appends each group with one write under
/// the partition's lock, applies the durability setting, then reports each record's offset. A record is
/// acknowledged only after it is in the file.
final class FQProducer: KafkaProducerBackend, @unchecked Sendable {
    private struct Item {
        var record: KafkaProducerRecord
        var ticket: DeliveryTicket?
        var timestampMilliseconds: Int64
        var size: Int
    }

    private let directory: FQDirectory
    private let options: KafkaFileQueueConfiguration
    private let logger: Logger
    /// Told when a full queue has room again.
    private let core: ProducerCore
    /// Told when the writer fails (a full disk, the directory gone), beside the records' own failures.
    private let errors: ClientErrorReports

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [Item] = []
    private var completionWaiters: [(id: Int, target: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    private var nextWaiterID = 0
    private var accepted: UInt64 = 0
    private var completed: UInt64 = 0
    private var stopWriter = false
    private let writerFinished = FQThreadCompletion()

    // Owned by the writer thread.
    private var partitionCounts: [String: Int] = [:]
    private var writers: [KafkaTopicPartition: FQPartitionWriter] = [:]
    private var lastSync = ContinuousClock.now

    init(options: KafkaFileQueueConfiguration, logger: Logger, core: ProducerCore, errors: ClientErrorReports) throws {
        try KafkaTopicName.validatePartitionCount(options.defaultPartitionCount, what: "defaultPartitionCount: a topic")
        self.directory = try FQDirectory(path: options.directory)
        self.options = options
        self.logger = logger
        self.core = core
        self.errors = errors
        let thread = Thread { [self] in writerLoop() }
        thread.name = "TracedKafka.fileQueue.writer"
        thread.start()
    }

    func offer(_ record: KafkaProducerRecord, trailingHeaders: TrailingHeaders, ticket: DeliveryTicket?) throws -> Bool {
        // The writer thread encodes the record after this returns: bytes of a caller's own type are copied now, so
        // that nothing the caller does later changes what is written, or the size measured here.
        var record = record
        trailingHeaders.forEach { key, value in record.headers.append(KafkaHeader(key: key, value: value)) }
        if record.keyBytes?.isOwned == false { record.keyBytes = record.keyBytes?.owned }
        if record.valueBytes?.isOwned == false { record.valueBytes = record.valueBytes?.owned }
        for index in record.headers.indices where record.headers[index].valueBytes?.isOwned == false {
            record.headers[index].valueBytes = record.headers[index].valueBytes?.owned
        }
        let size = FQRecordCodec.encodedSize(key: record.keyBytes, value: record.valueBytes, headers: record.headers)
        guard size <= FQRecordCodec.maxBodySize else {
            throw KafkaError(code: .invalidRecord, reason: "The record is \(size) bytes; the file queue takes at most "
                + "\(FQRecordCodec.maxBodySize)")
        }
        let timestamp = record.timestampMilliseconds ?? Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        let item = Item(record: record, ticket: ticket, timestampMilliseconds: timestamp, size: size)
        return condition.withLock {
            guard pending.count < max(1, options.maxQueuedRecords) else { return false }
            pending.append(item)
            accepted += 1
            // The writer waits only while nothing is pending: one wake-up per batch, not per record.
            if pending.count == 1 { condition.signal() }
            return true
        }
    }

    func flush(timeout: Duration) async throws {
        let target = condition.withLock { accepted }
        guard await waitUntilCompleted(target, timeout: timeout) else {
            if Task.isCancelled { throw KafkaError.flushCancelled }
            throw KafkaError(code: .timedOut, reason: "Records were still being written after \(timeout)")
        }
    }

    func close(flushTimeout: Duration, abortTransaction: Bool) async {
        let target = condition.withLock { accepted }
        _ = await waitUntilCompleted(target, timeout: flushTimeout)
        // What is still queued was not written in time: it fails, and the writer stops after its current batch.
        let left = condition.withLock {
            stopWriter = true
            condition.signal()
            defer { pending = [] }
            return pending
        }
        fail(left, with: KafkaError(code: .shutDown, reason: "The producer shut down before the record was written"))
        // Failed is an outcome: a flush waiting for these records returns now.
        markCompleted(left.count)
        await writerFinished.wait()
    }

    // MARK: - Waiting for completion

    /// Waits until `target` records have their outcome; `false` at the timeout.
    private func waitUntilCompleted(_ target: UInt64, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitUntilCompleted(target) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Waits until `target` records have their outcome; `false` when cancelled first.
    private func waitUntilCompleted(_ target: UInt64) async -> Bool {
        let id = condition.withLock {
            defer { nextWaiterID += 1 }
            return nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done = condition.withLock {
                    guard completed < target, !Task.isCancelled else { return true }
                    completionWaiters.append((id, target, continuation))
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            let waiter = condition.withLock {
                completionWaiters.firstIndex { $0.id == id }.map { completionWaiters.remove(at: $0).continuation }
            }
            waiter?.resume()
        }
        return condition.withLock { completed >= target }
    }

    /// `count` more records have their outcome: wakes the waiters whose target that reaches.
    private func markCompleted(_ count: Int) {
        let ready = condition.withLock {
            completed += UInt64(count)
            let ready = completionWaiters.filter { $0.target <= completed }
            completionWaiters.removeAll { $0.target <= completed }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    // MARK: - Writer thread

    private func writerLoop() {
        while let batch = nextBatch() {
            write(batch)
            if let interval = options.durability.syncInterval { syncIfDue(interval) }
            markCompleted(batch.count)
        }
        syncAll()
        writers = [:]
        writerFinished.markDone()
    }

    /// Everything queued, once there is something; `nil` when the writer must stop. Syncs on the interval while idle.
    private func nextBatch() -> [Item]? {
        let (batch, wasFull): ([Item], Bool) = condition.withLock {
            while pending.isEmpty && !stopWriter {
                if let interval = options.durability.syncInterval {
                    condition.unlock()
                    syncIfDue(interval)
                    condition.lock()
                    guard pending.isEmpty && !stopWriter else { break }
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(interval.milliseconds) / 1000))
                } else {
                    condition.wait()
                }
            }
            defer { pending = [] }
            return (pending, pending.count >= max(1, options.maxQueuedRecords))
        }
        // Only a full queue can have made a sender wait.
        if wasFull { core.roomMade() }
        return batch.isEmpty ? nil : batch
    }

    private func write(_ batch: [Item]) {
        var groups: [KafkaTopicPartition: [Item]] = [:]
        var order: [KafkaTopicPartition] = []
        for item in batch {
            do {
                let partition = try choosePartition(for: item.record)
                if groups[partition] == nil { order.append(partition) }
                groups[partition, default: []].append(item)
            } catch {
                reportWriterFailure(error)
                fail([item], with: error)
            }
        }
        for partition in order {
            let items = groups[partition]!
            do {
                let writer = try writer(for: partition)
                let entries = items.map {
                    FQPartitionWriter.Entry(
                        key: $0.record.keyBytes, value: $0.record.valueBytes, headers: $0.record.headers,
                        timestampMilliseconds: $0.timestampMilliseconds, size: $0.size
                    )
                }
                let first = try writer.append(entries, syncEach: options.durability == .perRecord)
                if options.durability == .perBatch { try writer.sync() }
                acknowledge(items[...], from: first, in: partition)
            } catch let failure as FQPartitionWriter.Failure {
                // Records appended whole before the failure are in the file: they are acknowledged, the rest fail.
                acknowledge(items.prefix(failure.written), from: failure.first, in: partition)
                reportWriterFailure(failure.error)
                fail(Array(items.dropFirst(failure.written)), with: failure.error)
            } catch let error as KafkaError where error.code == .unknownPartition {
                // Deleted: forget it, so a later record makes the topic afresh (as a broker creates topics on use).
                writers = writers.filter { $0.key.topic != partition.topic }
                partitionCounts[partition.topic] = nil
                fail(items, with: error)
            } catch {
                reportWriterFailure(error)
                fail(items, with: error)
            }
        }
    }

    /// A failure of the queue itself (not of one record: a partition it does not have) is an error event too.
    private func reportWriterFailure(_ error: any Error) {
        let kafkaError = error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")
        guard kafkaError.code != .unknownPartition, kafkaError.code != .invalidRecord else { return }
        errors.report(kafkaError)
    }

    private func acknowledge(_ items: ArraySlice<Item>, from first: Int64, in partition: KafkaTopicPartition) {
        for (index, item) in items.enumerated() {
            guard let ticket = item.ticket else { continue }
            ticket.deliver(.success(KafkaDeliveryReport(
                messageID: ticket.id, topic: partition.topic, partition: partition.partition,
                offset: first + Int64(index),
                timestamp: Date(timeIntervalSince1970: Double(item.timestampMilliseconds) / 1000)
            )))
        }
    }

    private func choosePartition(for record: KafkaProducerRecord) throws -> KafkaTopicPartition {
        let count: Int
        if let known = partitionCounts[record.topic] {
            count = known
        } else {
            count = try directory.createTopic(record.topic, partitions: options.defaultPartitionCount).count
            partitionCounts[record.topic] = count
        }
        if let explicit = record.partition {
            guard explicit < count else {
                throw KafkaError(
                    code: .unknownPartition,
                    reason: "Partition \(explicit) does not exist: topic \(record.topic) has \(count) partitions"
                )
            }
            return KafkaTopicPartition(topic: record.topic, partition: explicit)
        }
        return KafkaTopicPartition(
            topic: record.topic,
            partition: FQPartitioner.partition(forKey: record.keyBytes, partitionCount: count)
        )
    }

    private func writer(for partition: KafkaTopicPartition) throws -> FQPartitionWriter {
        if let writer = writers[partition] { return writer }
        let writer = try FQPartitionWriter(path: directory.logPath(partition), logger: logger)
        writers[partition] = writer
        return writer
    }

    private func syncIfDue(_ interval: Duration) {
        guard ContinuousClock.now - lastSync >= interval else { return }
        syncAll()
    }

    private func syncAll() {
        lastSync = ContinuousClock.now
        for (partition, writer) in writers {
            do {
                try writer.sync()
            } catch {
                logger.error("fsync failed", metadata: ["partition": "\(partition)", "error": "\(error)"])
            }
        }
    }

    private func fail(_ items: [Item], with error: any Error) {
        let kafkaError = error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")
        for item in items { item.ticket?.deliver(.failure(kafkaError)) }
    }
}


