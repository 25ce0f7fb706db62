import CRdKafka
import Foundation
import Logging
import Synchronization

/// The librdkafka consumer backend.
///
/// Subscribes at creation; a dedicated poll thread, started by ``start()``, fetches batches from the
/// consumer queue (serving rebalance callbacks on the way) and hands them to the ``ConsumerMessageBuffer``.
final class RDConsumer: KafkaConsumerBackend, @unchecked Sendable {
    private let client: RDClient
    private let configuration: KafkaConsumerConfiguration
    private let logger: Logger
    private let events: AsyncStream<KafkaConsumerEvent>.Continuation?
    /// Where fetched messages go; the rebalance callback drops revoked partitions' messages from it.
    private let buffer: ConsumerMessageBuffer
    /// The poll thread's life, under one lock: a start that races with close either wins (and close stops the
    /// thread before the handle goes) or finds the consumer closed and never polls a freed handle.
    private enum FetchState {
        case notStarted
        case running(RDPollThread)
        case closed
    }

    private let fetchState = Mutex(FetchState.notStarted)
    /// Topic handles for storing offsets (`rd_kafka_offset_store`), made on first use and destroyed
    /// when the consumer closes. Touched only inside `client.withOpenHandle` (which holds the client's lock) and by
    /// the close teardown, which runs once no such call can begin.
    private var offsetTopics: [String: OpaquePointer] = [:]

    init(
        configuration: KafkaConsumerConfiguration,
        buffer: ConsumerMessageBuffer,
        logger: Logger,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?,
        metrics: KafkaClientMetrics
    ) throws {
        self.configuration = configuration
        self.buffer = buffer
        self.logger = logger
        self.events = events
        let statistics = RDCallbacks.statisticsHandler(configuration.metrics, metrics, consumer: true)
        let callbacks = RDCallbacks(
            logger: logger,
            statistics: statistics,
            offsetCommit: { err, offsets in RDConsumer.reportCommit(err, offsets, events: events, logger: logger) }
        ) { handle, err, partitions in
            RDConsumer.rebalance(handle, err, partitions, buffer: buffer, events: events, logger: logger)
        }
        client = try RDClient(type: RD_KAFKA_CONSUMER, properties: configuration.rdKafkaProperties, callbacks: callbacks) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rdRebalanceCallback)
        }
        // Every event (rebalances, errors, messages) comes through the consumer queue from here on.
        rd_kafka_poll_set_consumer(client.handle)
        let subscription = RDTopicPartitionList.make(
            configuration.topics.map { KafkaTopicPartition(topic: $0, partition: -1) }
        )
        defer { rd_kafka_topic_partition_list_destroy(subscription) }
        let err = rd_kafka_subscribe(client.handle, subscription)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(err, context: "Could not subscribe to \(configuration.topics)")
        }
    }

    func start() {
        let client = self.client, buffer = self.buffer, logger = self.logger, events = self.events
        fetchState.withLock { state in
            guard case .notStarted = state else { return }
            state = .running(RDPollThread(name: "TracedKafka.consumer.poll") { thread in
                RDConsumer.pollLoop(client: client, buffer: buffer, thread: thread, logger: logger, events: events)
            })
        }
    }

    private static func pollLoop(
        client: RDClient,
        buffer: ConsumerMessageBuffer,
        thread: RDPollThread,
        logger: Logger,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?
    ) {
        let queue = rd_kafka_queue_get_consumer(client.handle)
        // The queue reference is ours and must go before the handle does.
        defer { rd_kafka_queue_destroy(queue) }
        let batchSize = 512
        var raw = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: batchSize)
        var topicNames: [OpaquePointer: String] = [:]
        var batch: [KafkaConsumerMessage] = []
        batch.reserveCapacity(batchSize)
        while !thread.shouldStop {
            // rd_kafka_consume_batch_queue waits until the batch is full or the timeout passes, which would hold a
            // lone message for up to the timeout. So: wait for the first message (returns as soon as there is one),
            // then take whatever else is already there without waiting.
            guard let first = rd_kafka_consume_queue(queue, 100) else { continue }
            raw[0] = first
            // Take no more than the buffer has room for, by count and by bytes (the first message's size standing
            // for the rest's): what is not taken stays in librdkafka's own bounded queue.
            let room = buffer.room()
            let firstSize = max(1, first.pointee.len + first.pointee.key_len)
            let wanted = min(batchSize - 1, max(0, room.count - 1), max(0, room.bytes - firstSize) / firstSize)
            let more = wanted == 0 ? 0 : raw.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_consume_batch_queue(queue, 0, buffer.baseAddress! + 1, wanted)
            }
            let count = 1 + max(0, more)
            for index in 0..<count {
                guard let message = raw[index] else { continue }
                // Each message is copied into Swift, then freed here.
                defer { rd_kafka_message_destroy(message) }
                guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    report(message, client: client, buffer: buffer, logger: logger, events: events)
                    continue
                }
                batch.append(convert(message, topicNames: &topicNames))
            }
            buffer.append(batch, shouldStop: { thread.shouldStop })
            batch.removeAll(keepingCapacity: true)
        }
    }

    private static func convert(
        _ message: UnsafeMutablePointer<rd_kafka_message_t>,
        topicNames: inout [OpaquePointer: String]
    ) -> KafkaConsumerMessage {
        let topic: String
        if let rkt = message.pointee.rkt {
            if let name = topicNames[rkt] {
                topic = name
            } else {
                topic = String(cString: rd_kafka_topic_name(rkt))
                topicNames[rkt] = topic
            }
        } else {
            topic = ""
        }
        return KafkaConsumerMessage(
            topic: topic,
            partition: Int(message.pointee.partition),
            offset: message.pointee.offset,
            key: bytes(message.pointee.key, message.pointee.key_len),
            value: bytes(message.pointee.payload, message.pointee.len),
            headers: headers(message),
            timestamp: rdTimestamp(message)
        )
    }

    private static func bytes(_ pointer: UnsafeMutableRawPointer?, _ count: Int) -> [UInt8]? {
        guard let pointer else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    private static func headers(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaHeaders {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var result = KafkaHeaders()
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            // Keys are C strings here; one that is not UTF-8 keeps its bytes.
            let key = name.map { name in
                String(validatingCString: name).map { KafkaHeader(key: $0, value: bytes) }
                    ?? KafkaHeader(keyBytes: Array(UnsafeRawBufferPointer(start: name, count: strlen(name))), value: bytes)
            }
            result.append(key ?? KafkaHeader(key: "", value: bytes))
            index += 1
        }
        return result
    }

    /// A consumer error event: fatal ones end the message sequence, the rest become events.
    private static func report(
        _ message: UnsafeMutablePointer<rd_kafka_message_t>,
        client: RDClient,
        buffer: ConsumerMessageBuffer,
        logger: Logger,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?
    ) {
        let err = message.pointee.err
        if err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
        let text = String(cString: rd_kafka_message_errstr(message))
        let error = KafkaError(code: .rdKafka, reason: text, rdKafkaCode: err.rawValue)
        if err == RD_KAFKA_RESP_ERR__FATAL {
            var errstr = [CChar](repeating: 0, count: 512)
            let fatal = rd_kafka_fatal_error(client.handle, &errstr, errstr.count)
            let fatalError = KafkaError(code: .rdKafka, reason: String(rdErrorBuffer: errstr), rdKafkaCode: fatal.rawValue)
            logger.error("Fatal consumer error, the consumer stops: \(fatalError)")
            buffer.finish(error: fatalError)
            return
        }
        logger.warning("Consumer error: \(error)")
        events?.yield(.error(error))
    }

    fileprivate static func rebalance(
        _ handle: OpaquePointer,
        _ err: rd_kafka_resp_err_t,
        _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
        buffer: ConsumerMessageBuffer,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?,
        logger: Logger
    ) {
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
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
            events?.yield(.partitionsAssigned(list))
        default:
            // Revoked (or lost): messages of these partitions still buffered were not handled; another member
            // will read them from the committed offset.
            buffer.drop(partitions: Set(list))
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) {
                    logger.error("Incremental unassign failed: \(KafkaError.consuming(error))")
                }
            } else {
                rd_kafka_assign(handle, nil)
            }
            logger.debug("Partitions revoked: \(list)")
            events?.yield(.partitionsRevoked(list))
        }
    }

    func storeOffsets(after messages: [KafkaConsumerMessage]) {
        guard let first = messages.first else { return }
        _ = try? client.withOpenHandle("The consumer") { handle in
            // The handler API's case, once per message: no dictionary.
            guard messages.count > 1 else { return storeOffset(after: first.offset, of: first.topic, first.partition, handle) }
            var highest: [KafkaTopicPartition: Int64] = [:]
            for message in messages {
                let partition = KafkaTopicPartition(topic: message.topic, partition: message.partition)
                highest[partition] = max(highest[partition] ?? message.offset, message.offset)
            }
            for (partition, offset) in highest { storeOffset(after: offset, of: partition.topic, partition.partition, handle) }
        }
    }

    /// Stores `offset + 1`, the next to read, through the topic's handle (no partition list per call). Fails only
    /// for a partition no longer assigned: its new owner re-reads the message (at-least-once). Call inside
    /// `client.withOpenHandle`.
    private func storeOffset(after offset: Int64, of topic: String, _ partition: Int, _ handle: OpaquePointer) {
        var rkt = offsetTopics[topic]
        if rkt == nil {
            rkt = rd_kafka_topic_new(handle, topic, nil)
            offsetTopics[topic] = rkt
        }
        // rd_kafka_offset_store adds the 1 itself.
        if let rkt { _ = rd_kafka_offset_store(rkt, Int32(clamping: partition), offset) }
    }

    /// A failed commit that librdkafka made by itself (its interval, or partitions let go) becomes an error
    /// event and a warning; nothing to commit is no failure.
    private static func reportCommit(
        _ err: rd_kafka_resp_err_t,
        _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?,
        logger: Logger
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
        guard let error else { return }
        logger.warning("Commit failed: \(error)")
        events?.yield(.error(error))
    }

    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws {
        guard !offsets.isEmpty else { return }
        try await client.blocking("The consumer") { handle in
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

    func close() async {
        let pollThread: RDPollThread? = fetchState.withLock { state in
            defer { state = .closed }
            if case .running(let thread) = state { return thread }
            return nil
        }
        let logger = self.logger
        await client.close { [self] handle in
            pollThread?.stopAndJoin()
            // Revokes the assignment (the rebalance callback runs here), commits stored offsets when auto-commit
            // is on, and leaves the group.
            let err = rd_kafka_consumer_close(handle)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.warning("Closing the consumer: \(KafkaError.rdKafka(err))")
            }
            // No store can start now (the client is marked closed); topic handles must go before the handle.
            for topic in offsetTopics.values { rd_kafka_topic_destroy(topic) }
            offsetTopics = [:]
        }
        buffer.finish()
        events?.finish()
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
