import CRdKafka
import Foundation
import Logging
import Synchronization

/// The librdkafka consumer backend: I/O for the ``ConsumerCore``.
///
/// Subscribes (or assigns the configured partitions) at creation, and again on the client's serial queue whenever
/// the subscription changes. A dedicated poll thread, spawned when the core says so, fetches batches from the
/// consumer queue — serving rebalance callbacks on the way — and hands them to the core without copying the records
/// (one ``RDMessageBatch`` per fetch); between batches it stores the offsets the core has for commit (librdkafka's
/// auto-commit then commits them on its interval) and carries out seeks and rewinds.
final class RDConsumer: KafkaConsumerBackend, @unchecked Sendable {
    private let client: RDClient
    private let core: ConsumerCore
    private let configuration: KafkaConsumerConfiguration
    private let logger: Logger
    /// The consumer queue (all events come through it), made on demand for the poll thread; `rd_kafka_queue_yield`
    /// on it cuts the poll thread's wait short. Destroyed at close, before the handle can go.
    private let queue: UncheckedSendable<OpaquePointer>
    /// The cluster's errors (librdkafka's error callback and consumer error events), as throttled error events.
    private let errors: ClientErrorReports

    private static let batchSize = 512

    init(
        configuration: KafkaConsumerConfiguration,
        core: ConsumerCore,
        logger: Logger,
        metrics: KafkaClientMetrics
    ) throws {
        self.configuration = configuration
        self.core = core
        self.logger = logger
        let statistics = RDCallbacks.statisticsHandler(configuration.metrics, metrics, consumer: true)
        // Cluster errors become events; a fatal one ends the messages with it.
        errors = ClientErrorReports { error in
            if error.isFatal { core.fail(error, deliveringBuffered: false) }
            core.emit(.error(error))
        }
        let callbacks = RDCallbacks(
            logger: logger,
            statistics: statistics,
            offsetCommit: { err, offsets in RDConsumer.reportCommit(err, offsets, core: core, logger: logger, metrics: metrics) },
            errors: errors
        ) { handle, err, partitions in
            RDConsumer.rebalance(handle, err, partitions, core: core, logger: logger)
        }
        client = try RDClient(type: RD_KAFKA_CONSUMER, properties: try configuration.rdKafkaProperties(), callbacks: callbacks) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rdRebalanceCallback)
        }
        // Every event (rebalances, errors, messages) comes through the consumer queue from here on.
        rd_kafka_poll_set_consumer(client.handle)
        queue = UncheckedSendable(rd_kafka_queue_get_consumer(client.handle))
        if configuration.readsGivenPartitions {
            try assignGivenPartitions()
        } else if let topics = core.subscription, !topics.isEmpty {
            // A member made without topics joins its group when it first subscribes.
            let err = Self.subscribe(client.handle, to: topics)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                rd_kafka_queue_destroy(queue.value)
                throw KafkaError.rdKafka(err, context: "Could not subscribe to \(topics)")
            }
        }
    }

    /// `rd_kafka_subscribe`, or `rd_kafka_unsubscribe` for no topics. Either waits for librdkafka's main thread to
    /// take the change (not for the rebalance it starts, which reaches the poll thread's rebalance callback).
    private static func subscribe(_ handle: OpaquePointer, to topics: [String]) -> rd_kafka_resp_err_t {
        guard !topics.isEmpty else { return rd_kafka_unsubscribe(handle) }
        let list = RDTopicPartitionList.make(topics.map { KafkaTopicPartition(topic: $0, partition: Int(RD_KAFKA_PARTITION_UA)) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return rd_kafka_subscribe(handle, list)
    }

    /// Assigns the configured partitions from their starting offsets (no group membership).
    private func assignGivenPartitions() throws {
        let list = rd_kafka_topic_partition_list_new(Int32(configuration.partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for start in configuration.partitions {
            rd_kafka_topic_partition_list_add(list, start.topic, Int32(start.partition))!.pointee.offset = start.offset.rdKafkaValue
        }
        let err = rd_kafka_assign(client.handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            rd_kafka_queue_destroy(queue.value)
            throw KafkaError.rdKafka(err, context: "Could not assign \(configuration.partitions)")
        }
        core.assigned(configuration.partitions.map(\.topicPartition))
    }

    // MARK: - Poll thread

    func spawnFetcher() {
        let thread = Thread { [self] in
            pollLoop()
            core.fetcherStopped()
        }
        thread.name = "TracedKafka.consumer.poll"
        thread.start()
    }

    private func pollLoop() {
        // Messages keep the handle alive past close, so a consumer's messages stay readable after shutdown.
        guard let keeper = client.hold() else { return }
        let queue = self.queue.value
        var raw = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: Self.batchSize)
        var good: [UnsafeMutablePointer<rd_kafka_message_t>] = []
        good.reserveCapacity(Self.batchSize)
        var batch: [ConsumerStateMachine.FetchedMessage] = []
        batch.reserveCapacity(Self.batchSize)
        var topics = TopicNames()
        while !core.fetcherShouldStop {
            storeOffsets()
            for request in core.takeFetcherRequests() { carryOut(request) }
            let room = core.room
            guard room.count > 0 else {
                // Full: the handler is behind. Wait for it (offsets and requests are still served every 100 ms).
                core.waitForRoom(.milliseconds(100))
                continue
            }
            // rd_kafka_consume_batch_queue waits until the batch is full or the timeout passes, which would hold a
            // lone message for up to the timeout. So: wait for the first message (returns as soon as there is one),
            // then take whatever else is already there without waiting, no more than the buffer has room for (the
            // first message's size standing for the rest's).
            guard let first = rd_kafka_consume_queue(queue, 100) else { continue }
            raw[0] = first
            let firstSize = max(1, first.pointee.len + first.pointee.key_len)
            let wanted = min(Self.batchSize - 1, room.count - 1, max(0, room.bytes - firstSize) / firstSize)
            let more = wanted <= 0 ? 0 : raw.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_consume_batch_queue(queue, 0, buffer.baseAddress! + 1, wanted)
            }
            // Errors are reported and destroyed; the messages go into one object for the batch.
            good.removeAll(keepingCapacity: true)
            for index in 0..<(1 + max(0, more)) {
                guard let message = raw[index] else { continue }
                guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    report(message)
                    rd_kafka_message_destroy(message)
                    continue
                }
                good.append(message)
            }
            guard !good.isEmpty else { continue }
            let messages = RDMessageBatch(good, keeper: keeper)
            for (index, message) in good.enumerated() {
                let timestamp = rdTimestamp(message)
                let converted = KafkaConsumerMessage(
                    topic: topics.name(of: message.pointee.rkt),
                    partition: Int(message.pointee.partition),
                    offset: message.pointee.offset,
                    timestamp: timestamp?.date,
                    timestampType: timestamp?.type,
                    librdkafka: messages,
                    index: index
                )
                batch.append(ConsumerStateMachine.FetchedMessage(message: converted, size: message.pointee.len + message.pointee.key_len))
            }
            core.fetched(&batch)
        }
        storeOffsets()
    }

    /// Topic names by librdkafka topic handle: one String per topic, made once.
    private struct TopicNames {
        private var names = LastKeyCache<OpaquePointer, String>()

        mutating func name(of rkt: OpaquePointer?) -> String {
            guard let rkt else { return "" }
            return names.value(for: rkt) { String(cString: rd_kafka_topic_name($0)) }
        }
    }

    /// Hands librdkafka the offsets the core has stored since the last call; librdkafka commits them on its
    /// interval and when the partitions go. Fails only for partitions no longer assigned (their new owner reads
    /// the messages again: at-least-once). Called on the thread that serves the consumer queue.
    private func storeOffsets() {
        let offsets = core.takeStoredOffsets()
        guard !offsets.isEmpty else { return }
        Self.store(offsets, on: client.handle)
    }

    private static func store(_ offsets: [KafkaTopicPartitionOffset], on handle: OpaquePointer) {
        let list = RDTopicPartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = rd_kafka_offsets_store(handle, list)
    }

    private func carryOut(_ request: ConsumerStateMachine.FetcherRequest) {
        switch request {
        case .seek(let partition, let offset, let continuation):
            continuation.resume(with: Result { try seek(partition, to: offset) })
        case .rewind(let partition, let offset):
            rewind(partition, to: offset)
        }
    }

    /// On the poll thread, between batches: a partition whose topic is subscribed again before the group took it
    /// back is fetched again from its first dropped message, then handed out from again. librdkafka drops what it
    /// fetched before the seek.
    private func rewind(_ partition: KafkaTopicPartition, to offset: Int64) {
        guard core.machine.withLock({ $0.rewindTarget(of: partition) }) == offset else { return }
        do {
            try moveFetchPosition(of: partition, to: offset)
        } catch {
            // It stays leaving: its messages are not handed out, and the group's next rebalance starts it afresh.
            logger.error("Could not read \(partition) again from \(offset) after subscribing to its topic again: \(error)")
            core.emit(.error(error))
            return
        }
        core.machine.withLock { $0.rewound(partition, to: offset) }
    }

    /// On the poll thread, between batches: resolves the offset against the partition's watermarks, moves
    /// librdkafka's fetch position, then the core's (dropping what was fetched before).
    private func seek(_ partition: KafkaTopicPartition, to offset: KafkaOffset) throws {
        try core.machine.withLock { try $0.requireOwned([partition], for: "seek") }
        let (low, high) = try Self.watermarks(partition, on: client.handle, timeout: .seconds(10))
        let target = try offset.resolve(low: low, high: high, in: partition)
        try moveFetchPosition(of: partition, to: target)
        try core.machine.withLock { try $0.seek(partition, to: target) }
    }

    /// Moves librdkafka's fetch position of `partition` to `offset` (what it fetched before is dropped).
    private func moveFetchPosition(of partition: KafkaTopicPartition, to offset: Int64) throws(KafkaError) {
        let list = RDTopicPartitionList.make([KafkaTopicPartitionOffset(topic: partition.topic, partition: partition.partition, offset: offset)])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_seek_partitions(client.handle, list, 10_000) { throw KafkaError.consuming(error) }
        if let error = RDTopicPartitionList.firstError(list) { throw error }
    }

    private static func watermarks(
        _ partition: KafkaTopicPartition,
        on handle: OpaquePointer,
        timeout: Duration
    ) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0, high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(
            handle, partition.topic, Int32(clamping: partition.partition), &low, &high, Int32(clamping: timeout.milliseconds)
        )
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(err, context: "Could not read the offsets of \(partition)")
        }
        return (low, high)
    }

    /// A consumer error event: fatal ones end the messages, the rest become events.
    private func report(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let err = message.pointee.err
        if err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
        let text = String(cString: rd_kafka_message_errstr(message))
        let error = KafkaError(code: .rdKafka, reason: text, rdKafkaCode: KafkaError.RdKafkaCode(err))
        if err == RD_KAFKA_RESP_ERR__FATAL {
            let fatalError = KafkaError.fatal(of: client.handle)
            logger.error("Fatal consumer error, the consumer stops: \(fatalError)")
            core.fail(fatalError, deliveringBuffered: false)
            return
        }
        logger.warning("Consumer error: \(error)")
        errors.report(error)
    }

    // MARK: - Callbacks (on the thread that serves the consumer queue)

    fileprivate static func rebalance(
        _ handle: OpaquePointer,
        _ err: rd_kafka_resp_err_t,
        _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
        core: ConsumerCore,
        logger: Logger
    ) {
        // NULL when librdkafka knows no protocol yet (a rebalance while the consumer closes): not cooperative.
        let protocolName: UnsafePointer<CChar>? = rd_kafka_rebalance_protocol(handle)
        let cooperative = protocolName.map { String(cString: $0) } == "COOPERATIVE"
        let list = RDTopicPartitionList.partitions(partitions)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) {
                    logger.error("Incremental assign failed: \(KafkaError.consuming(error))")
                }
            } else {
                rd_kafka_assign(handle, partitions)
            }
            logger.debug("Partitions assigned: \(list)")
            core.assigned(list)
        default:
            // Revoked, or lost (thrown out of the group: their commits would be refused). What was handled of
            // revoked partitions is stored first, so librdkafka commits it as it lets them go; buffered messages
            // were not handled and are dropped: another member reads them from the committed offset.
            let lost = rd_kafka_assignment_lost(handle) != 0
            let pending = core.revoked(list, lost: lost)
            if !pending.isEmpty { store(pending, on: handle) }
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) {
                    logger.error("Incremental unassign failed: \(KafkaError.consuming(error))")
                }
            } else {
                rd_kafka_assign(handle, nil)
            }
            logger.debug("Partitions \(lost ? "lost" : "revoked"): \(list)")
        }
    }

    /// A failed commit that librdkafka made by itself (its interval, or partitions let go) becomes an error
    /// event and a warning; nothing to commit is no failure.
    fileprivate static func reportCommit(
        _ err: rd_kafka_resp_err_t,
        _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        core: ConsumerCore,
        logger: Logger,
        metrics: KafkaClientMetrics
    ) {
        guard err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
        let error: KafkaError?
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let partitions = offsets.map { RDTopicPartitionList.partitions($0) } ?? []
            error = KafkaError.rdKafka(err, context: "Automatic commit of \(partitions) failed")
        } else {
            error = offsets.flatMap { RDTopicPartitionList.firstError($0) }.map {
                KafkaError(code: $0.code, reason: "Automatic commit failed: \($0.reason)", rdKafkaCode: $0.rdKafkaCode)
            }
        }
        metrics.recordOwnCommit(error: error)
        guard let error else { return }
        logger.warning("Commit failed: \(error)")
        core.emit(.error(error))
    }

    // MARK: - Calls

    func wakeFetcher() {
        rd_kafka_queue_yield(queue.value)
    }

    /// On the client's serial queue, so changes reach the core and librdkafka in one order: the core first (its
    /// buffered messages of dropped topics go, and partitions the group assigns from now on are judged by the new
    /// subscription), then librdkafka, whose rebalance then revokes through the poll thread's callback (committing
    /// what was handled) and assigns the new topics' partitions. librdkafka postpones a change that comes during a
    /// rebalance until that rebalance is done.
    func subscribe(_ topics: [String]) async throws {
        let core = self.core, wake = self.wakeFetcher
        try await client.blocking("The consumer") { handle in
            let previous = try core.subscribe(topics, wake: wake)
            let err = Self.subscribe(handle, to: topics)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                _ = try? core.subscribe(previous, wake: wake)
                throw KafkaError.rdKafka(err, context: topics.isEmpty ? "Could not unsubscribe" : "Could not subscribe to \(topics)")
            }
        }
    }

    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws {
        guard !offsets.isEmpty else { return }
        try await client.blocking("The consumer") { handle in
            for offset in offsets { try Self.requireWithinPartition(offset, on: handle) }
            let list = RDTopicPartitionList.make(offsets)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            // With a callback of its own (served in this call, on a temporary queue), so the outcome reaches the
            // caller only, not also the automatic commits' error events.
            var outcome = RDCommitOutcome()
            let err = withUnsafeMutablePointer(to: &outcome) { pointer in
                rd_kafka_commit_queue(handle, list, nil, rdCommitOutcomeCallback, pointer)
            }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
                throw KafkaError.rdKafka(err, context: "Commit failed")
            }
            if let error = outcome.error { throw error }
        }
    }

    /// Refuses to commit past a partition's end (its high watermark, the offset its next record gets): the group's
    /// next member would skip every record produced until the partition reached it. The watermark librdkafka last
    /// fetched answers for offsets at or before it; a later one is checked with the broker.
    private static func requireWithinPartition(_ offset: KafkaTopicPartitionOffset, on handle: OpaquePointer) throws {
        var low: Int64 = -1, high: Int64 = -1
        let cached = rd_kafka_get_watermark_offsets(handle, offset.topic, Int32(clamping: offset.partition), &low, &high)
        if cached == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0, offset.offset <= high { return }
        let partition = KafkaTopicPartition(topic: offset.topic, partition: offset.partition)
        let (_, end) = try watermarks(partition, on: handle, timeout: .seconds(10))
        guard offset.offset <= end else { throw KafkaError.commitPastEnd(offset, end: end) }
    }

    func committed(_ partitions: [KafkaTopicPartition], timeout: Duration) async throws -> [KafkaTopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        return try await client.blocking("The consumer") { handle in
            try RDTopicPartitionList.with(partitions) { list in
                let err = rd_kafka_committed(handle, list, Int32(clamping: timeout.milliseconds))
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError(
                        code: err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .rdKafka,
                        reason: "Could not read the committed offsets of \(partitions): \(String(cString: rd_kafka_err2str(err)))",
                        rdKafkaCode: KafkaError.RdKafkaCode(err)
                    )
                }
                if let error = RDTopicPartitionList.firstError(list) { throw error }
                var result: [KafkaTopicPartition: Int64] = [:]
                for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset >= 0 {
                    let element = list.pointee.elems[index]
                    result[KafkaTopicPartition(topic: String(cString: element.topic), partition: Int(element.partition))] = element.offset
                }
                return result
            }
        }
    }

    func fetchPosition(_ partition: KafkaTopicPartition) throws -> Int64? {
        try client.withOpenHandle("The consumer") { handle in
            try RDTopicPartitionList.with([partition]) { list in
                let err = rd_kafka_position(handle, list)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, context: "Could not read the position of \(partition)") }
                let offset = list.pointee.elems[0].offset
                return offset >= 0 ? offset : nil
            }
        }
    }

    func groupMetadata() throws -> RDGroupMetadata {
        try client.withOpenHandle("The consumer") { handle in
            guard let metadata = rd_kafka_consumer_group_metadata(handle) else {
                throw KafkaError(code: .noGroup, reason: "librdkafka has no group metadata for this consumer")
            }
            return RDGroupMetadata(metadata)
        }
    }

    func pause(_ partitions: [KafkaTopicPartition]) throws {
        try changeFetching(partitions, rd_kafka_pause_partitions, "pause")
    }

    func resume(_ partitions: [KafkaTopicPartition]) throws {
        try changeFetching(partitions, rd_kafka_resume_partitions, "resume")
    }

    private func changeFetching(
        _ partitions: [KafkaTopicPartition],
        _ call: (OpaquePointer?, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> rd_kafka_resp_err_t,
        _ verb: String
    ) throws {
        try client.withOpenHandle("The consumer") { handle in
            try RDTopicPartitionList.with(partitions) { list in
                let err = call(handle, list)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, context: "Could not \(verb)") }
                if let error = RDTopicPartitionList.firstError(list) { throw error }
            }
        }
    }

    /// Closes once the core's fetcher has stopped: stores what is left to commit, then lets librdkafka revoke the
    /// assignment (the rebalance callback runs here), commit and leave the group.
    func close() async {
        let logger = self.logger, core = self.core, queue = self.queue
        await client.close { handle in
            let offsets = core.takeStoredOffsets()
            if !offsets.isEmpty { RDConsumer.store(offsets, on: handle) }
            let err = rd_kafka_consumer_close(handle)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.warning("Closing the consumer: \(KafkaError.rdKafka(err))")
            }
            // Queues must go before their handle.
            rd_kafka_queue_destroy(queue.value)
        }
    }
}

extension KafkaOffset {
    /// The offset as librdkafka writes a starting position (logical offsets are negative).
    var rdKafkaValue: Int64 {
        switch position {
        case .beginning: return Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: return Int64(RD_KAFKA_OFFSET_END)
        case .committed: return Int64(RD_KAFKA_OFFSET_STORED)
        // A tail longer than any partition can hold reads from the beginning (and cannot overflow librdkafka's
        // encoding of tails below RD_KAFKA_OFFSET_TAIL_BASE).
        case .tail(let count): return count > Int64.max / 2 ? Int64(RD_KAFKA_OFFSET_BEGINNING) : Int64(RD_KAFKA_OFFSET_TAIL_BASE) - count
        case .absolute(let offset): return offset
        }
    }
}

/// Called on the thread that polls the consumer queue (the poll thread, or the closing thread).
private let rdRebalanceCallback: @convention(c) (
    OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
) -> Void = { handle, err, partitions, _ in
    guard let handle, let partitions, let rebalance = RDCallbacks.of(handle)?.rebalance else { return }
    rebalance(handle, err, partitions)
}

/// What a commit's own callback saw.
private struct RDCommitOutcome {
    var error: KafkaError?
}

/// Served inside `rd_kafka_commit_queue`, on the thread that called it; `opaque` is that call's outcome.
private let rdCommitOutcomeCallback: @convention(c) (
    OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
) -> Void = { _, err, offsets, opaque in
    guard let outcome = opaque?.assumingMemoryBound(to: RDCommitOutcome.self) else { return }
    if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
        outcome.pointee.error = KafkaError.rdKafka(err, context: "Commit failed")
    } else if let offsets, let error = RDTopicPartitionList.firstError(offsets) {
        outcome.pointee.error = error
    }
}
