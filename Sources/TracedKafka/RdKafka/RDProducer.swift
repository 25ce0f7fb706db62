import CRdKafka
import Foundation
import Logging
import Synchronization

/// The librdkafka producer backend.
///
/// Delivery reports come as librdkafka events (`RD_KAFKA_EVENT_DR`, a batch of records per event), served by one
/// dedicated poll thread as soon as librdkafka has them (`rd_kafka_queue_poll` wakes on the event; its timeout only
/// bounds shutdown), and by nothing else: `rd_kafka_flush` then waits for that thread instead of serving reports
/// itself on the caller's thread, so every outcome is reported from one thread, in librdkafka's order. An
/// observed record carries its retained ``DeliveryTicket`` as its msg_opaque; its report takes it back, so every
/// ticket is released exactly once.
///
/// `rd_kafka_produceva` is called with no lock held: the producer's ``ProducerCore`` counts each offer and closes
/// this backend only once none is under way, so the handle is open for every offer.
final class RDProducer: KafkaProducerBackend, @unchecked Sendable {
    private let client: RDClient
    private let pollThread: RDPollThread
    /// librdkafka's main queue, where the delivery report events arrive.
    private let events: UncheckedSendable<OpaquePointer>
    private let errors: ClientErrorReports

    /// - Parameters:
    ///   - configuration: The producer's configuration.
    ///   - logger: Where librdkafka logs.
    ///   - metrics: Fed from librdkafka's statistics.
    ///   - core: Told when librdkafka's queue may have room again.
    ///   - errors: Receives librdkafka's cluster errors, and explains timed-out deliveries.
    init(
        configuration: KafkaProducerConfiguration,
        logger: Logger,
        metrics: KafkaClientMetrics,
        core: ProducerCore,
        errors: ClientErrorReports
    ) throws {
        let client = try RDClient(
            type: RD_KAFKA_PRODUCER,
            properties: try configuration.rdKafkaProperties(),
            callbacks: RDCallbacks(logger: logger, statistics: RDCallbacks.statisticsHandler(configuration.metrics, metrics, consumer: false))
        ) { conf in
            rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_DR))
        }
        let events = UncheckedSendable(rd_kafka_queue_get_main(client.handle)!)
        self.client = client
        self.events = events
        self.errors = errors
        self.pollThread = RDPollThread(name: "TracedKafka.producer.poll") { thread in
            while !thread.shouldStop {
                // Served delivery reports free room in librdkafka's queue.
                if RDProducer.serve(events.value, client: client, errors: errors, timeout: 100) { core.roomMade() }
            }
        }
    }

    /// Serves what the main queue holds, waiting up to `timeout` ms for the first event: delivery reports (each
    /// event a batch), statistics, errors. Returns whether anything was served.
    private static func serve(_ queue: OpaquePointer, client: RDClient, errors: ClientErrorReports, timeout: Int32) -> Bool {
        guard var event = rd_kafka_queue_poll(queue, timeout) else { return false }
        while true {
            switch Int32(rd_kafka_event_type(event)) {
            case Int32(RD_KAFKA_EVENT_DR):
                // The messages belong to the event: read them all before it is destroyed.
                withUnsafeTemporaryAllocation(of: UnsafePointer<rd_kafka_message_t>?.self, capacity: 256) { batch in
                    while case let count = rd_kafka_event_message_array(event, batch.baseAddress, batch.count), count > 0 {
                        for index in 0..<count { if let message = batch[index] { rdDeliver(message, errors: errors) } }
                    }
                }
            case Int32(RD_KAFKA_EVENT_STATS):
                if let statistics = client.callbacks.statistics, !client.callbacks.isSilenced, let json = rd_kafka_event_stats(event) {
                    statistics(Data(bytes: json, count: strlen(json)))
                }
            case Int32(RD_KAFKA_EVENT_ERROR):
                if !client.callbacks.isSilenced {
                    let err = rd_kafka_event_error(event), text = String(cString: rd_kafka_event_error_string(event))
                    let isFatal = rd_kafka_event_error_is_fatal(event) != 0
                    client.callbacks.logger.log(level: isFatal ? .critical : .error, "Producer error: \(KafkaError.RdKafkaCode(err)): \(text)")
                    errors.report(err, text, isFatal: isFatal, on: client.handle)
                }
            default:
                break
            }
            rd_kafka_event_destroy(event)
            // Whatever else is already there, without waiting: the senders of a burst of reports resume together.
            guard let next = rd_kafka_queue_poll(queue, 0) else { return true }
            event = next
        }
    }

    func offer(_ record: KafkaProducerRecord, trailingHeaders: TrailingHeaders, ticket: DeliveryTicket?) throws -> Bool {
        switch RDProducer.enqueue(record, trailingHeaders: trailingHeaders, ticket: ticket, on: client.handle) {
        case RD_KAFKA_RESP_ERR_NO_ERROR: return true
        case RD_KAFKA_RESP_ERR__QUEUE_FULL: return false
        case let err: throw KafkaError.rdKafka(err, context: "Could not send to topic '\(record.topic)'")
        }
    }

    /// One `rd_kafka_produceva` call. Returns librdkafka's error code; on any error nothing is kept by librdkafka
    /// (headers and the ticket's retain are released here).
    private static func enqueue(
        _ record: KafkaProducerRecord,
        trailingHeaders: TrailingHeaders,
        ticket: DeliveryTicket?,
        on handle: OpaquePointer
    ) -> rd_kafka_resp_err_t {
        let headers = record.headers.isEmpty && trailingHeaders.isEmpty ? nil : makeHeaders(record.headers, trailingHeaders)
        let opaque = ticket.map { Unmanaged.passRetained($0).toOpaque() }
        let err: rd_kafka_resp_err_t = record.topic.withCString { topic in
            withOptionalBytes(record.keyBytes) { key, keyCount in
                withOptionalBytes(record.valueBytes) { value, valueCount in
                    // At most 8 arguments, on the stack: this runs once per record.
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 8) { args in
                        var count = 0
                        func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                            var arg = rd_kafka_vu_t()
                            arg.vtype = type
                            set(&arg)
                            args.initializeElement(at: count, to: arg)
                            count += 1
                        }
                        add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
                        add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                        add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = record.partition.map(Int32.init) ?? rdPartitionUnassigned }
                        if let value { add(RD_KAFKA_VTYPE_VALUE) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value); $0.u.mem.size = valueCount } }
                        if let key { add(RD_KAFKA_VTYPE_KEY) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key); $0.u.mem.size = keyCount } }
                        if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
                        if let opaque { add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque } }
                        if let timestamp = record.timestampMilliseconds { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
                        guard let error = rd_kafka_produceva(handle, args.baseAddress, count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                        // Refused: the headers and the ticket's retain are still ours.
                        let code = rd_kafka_error_code(error)
                        rd_kafka_error_destroy(error)
                        return code
                    }
                }
            }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if let headers { rd_kafka_headers_destroy(headers) }
            if let opaque { Unmanaged<DeliveryTicket>.fromOpaque(opaque).release() }
        }
        return err
    }

    /// librdkafka's header list: the record's headers, then the trace headers.
    private static func makeHeaders(_ headers: KafkaHeaders, _ trailingHeaders: TrailingHeaders) -> OpaquePointer {
        let list = rd_kafka_headers_new(headers.count + trailingHeaders.count)!
        // The key's exact bytes (admission refused a key holding NUL, which librdkafka's C strings end at).
        func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawPointer?, _ count: Int) {
            guard let name = key.baseAddress?.assumingMemoryBound(to: CChar.self) else {
                return _ = rd_kafka_header_add(list, "", 0, value, count)
            }
            _ = rd_kafka_header_add(list, name, key.count, value, count)
        }
        headers.forEachBorrowed { header in
            withOptionalBytes(header.valueBytes) { value, count in header.withKeyBytes { key in add(key, value, count) } }
        }
        trailingHeaders.forEach { key, value in
            var key = key  // withUTF8 reads a native string's bytes in place
            key.withUTF8 { key in withOptionalBytes(value) { value, count in add(UnsafeRawBufferPointer(key), value, count) } }
        }
        return list
    }

    func flush(timeout: Duration) async throws {
        let cancelled = Atomic(false)
        let (err, outstanding) = try await withTaskCancellationHandler {
            try await client.blocking("The producer") { handle in
                // In slices, so that a cancelled flush frees the client's queue promptly.
                let deadline = ContinuousClock.now + timeout
                var err = RD_KAFKA_RESP_ERR__TIMED_OUT
                while !cancelled.load(ordering: .relaxed), case let left = deadline - .now, left > .zero {
                    err = rd_kafka_flush(handle, Int32(clamping: min(left, .milliseconds(100)).milliseconds))
                    if err == RD_KAFKA_RESP_ERR_NO_ERROR { break }
                }
                // Counted here: once this closure returns, a queued close may destroy the handle.
                return (err, rd_kafka_outq_len(handle))
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            if cancelled.load(ordering: .relaxed) { throw KafkaError.flushCancelled }
            throw KafkaError(
                code: .timedOut,
                reason: "\(outstanding) records still outstanding after flushing for \(timeout)",
                rdKafkaCode: KafkaError.RdKafkaCode(err)
            )
        }
    }

    func transactionCall(_ call: TransactionCall, timeout: Duration) async throws {
        try await client.blocking("The producer") { handle in
            let milliseconds = Int32(clamping: timeout.milliseconds)
            let error: OpaquePointer?
            switch call {
            case .initialize: error = rd_kafka_init_transactions(handle, milliseconds)
            case .begin: error = rd_kafka_begin_transaction(handle)
            case .sendOffsets(let offsets, let group):
                let list = RDTopicPartitionList.make(offsets)
                defer { rd_kafka_topic_partition_list_destroy(list) }
                error = rd_kafka_send_offsets_to_transaction(handle, list, group.pointer, milliseconds)
            case .commit: error = rd_kafka_commit_transaction(handle, milliseconds)
            case .abort: error = rd_kafka_abort_transaction(handle, milliseconds)
            }
            guard let error else { return }
            throw TransactionCallFailure(consuming: error)
        }
    }

    func close(flushTimeout: Duration, abortTransaction: Bool) async {
        let pollThread = self.pollThread
        await client.close { [self] handle in
            // New sends already fail (the client is closed). Deliver what is queued, then fail what is left:
            // purged records get a delivery report with an error, so no awaiting caller is left hanging.
            // A transaction still open is aborted (its records purged; their senders get the error), not left for
            // the broker to time out: its records never become visible, and the next instance starts at once.
            if abortTransaction, let error = rd_kafka_abort_transaction(handle, Int32(clamping: flushTimeout.milliseconds)) {
                rd_kafka_error_destroy(error)
            }
            rd_kafka_flush(handle, Int32(clamping: flushTimeout.milliseconds))
            rd_kafka_purge(handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
            pollThread.stopAndJoin()
            // Serve the purge's delivery reports here: rd_kafka_destroy would drop any still pending, and their
            // senders would wait forever.
            let deadline = ContinuousClock.now + .seconds(60)
            while rd_kafka_outq_len(handle) > 0, ContinuousClock.now < deadline {
                _ = RDProducer.serve(self.events.value, client: self.client, errors: self.errors, timeout: 100)
            }
            rd_kafka_queue_destroy(self.events.value)
        }
    }
}

extension TransactionCallFailure {
    /// Takes over an `rd_kafka_error_t` from a transactional call, reads librdkafka's classification and frees it.
    init(consuming error: OpaquePointer) {
        let kind: Kind =
            rd_kafka_error_is_fatal(error) != 0 ? .fatal
            : rd_kafka_error_txn_requires_abort(error) != 0 ? .abortable
            : rd_kafka_error_is_retriable(error) != 0 ? .retriable
            : .other
        let code: KafkaError.Code = kind == .fatal ? .fatal : rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .rdKafka
        let failure = KafkaError.consuming(error)
        self.init(error: KafkaError(code: code, reason: failure.reason, rdKafkaCode: failure.rdKafkaCode, retriable: kind == .retriable), kind: kind)
    }
}

/// A consumer's group metadata (`rd_kafka_consumer_group_metadata_t`), which a transaction's offsets are committed
/// for; freed with the last reference.
final class RDGroupMetadata: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { rd_kafka_consumer_group_metadata_destroy(pointer) }
}

/// librdkafka's "unassigned partition": let the partitioner choose.
let rdPartitionUnassigned: Int32 = -1

/// One record's delivery report, on the poll thread (or the closing thread); a timeout says what the cluster did.
private func rdDeliver(_ message: UnsafePointer<rd_kafka_message_t>, errors: ClientErrorReports) {
    guard let opaque = message.pointee._private else { return }
    // Balances the passRetained in enqueue: each ticket is taken back exactly once.
    let ticket = Unmanaged<DeliveryTicket>.fromOpaque(opaque).takeRetainedValue()
    let err = message.pointee.err
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
        ticket.deliver(.failure(errors.explained(KafkaError.rdKafka(err, context: "Delivery to topic '\(ticket.topic)' failed"))))
        return
    }
    let timestamp = rdTimestamp(message)
    ticket.deliver(
        .success(
            KafkaDeliveryReport(
                messageID: ticket.id,
                topic: ticket.topic,
                partition: Int(message.pointee.partition),
                offset: message.pointee.offset,
                timestamp: timestamp?.date,
                timestampType: timestamp?.type
            )
        )
    )
}

/// A message's timestamp and what it means, if it has one.
func rdTimestamp(_ message: UnsafePointer<rd_kafka_message_t>) -> (date: Date, type: KafkaTimestampType)? {
    var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let milliseconds = rd_kafka_message_timestamp(message, &type)
    guard type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE, milliseconds >= 0 else { return nil }
    return (
        Date(timeIntervalSince1970: Double(milliseconds) / 1000),
        type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? .logAppendTime : .createTime
    )
}

/// A pointer and count for optional bytes: `nil` for `nil`, a non-null pointer for an empty array (Kafka tells
/// an empty value from a null one by the pointer).
func withOptionalBytes<R>(_ bytes: (some KafkaContiguousBytes)?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let bytes else { return body(nil, 0) }
    return bytes.withUnsafeBytes { buffer in
        guard let base = buffer.baseAddress, buffer.count > 0 else {
            return withUnsafeBytes(of: UInt8(0)) { body($0.baseAddress, 0) }
        }
        return body(base, buffer.count)
    }
}
