import CRdKafka
import Dispatch
import struct Foundation.Data
import Logging
import Synchronization

/// One librdkafka handle (`rd_kafka_t`) and the rules for touching it safely.
///
/// - Quick, non-blocking calls (produce, pause, offset store) run under ``withOpenHandle(_:)``: the lock guarantees
///   the handle is not destroyed while they run.
/// - Blocking calls (flush, commit, close) run on one serial dispatch queue per client, never on Swift's
///   cooperative thread pool. Closing runs on that queue too, so it is ordered after every blocking call before it.
final class RDClient: @unchecked Sendable {
    /// The handle. Valid until ``close(_:)`` has run its teardown; destroyed once nothing keeps it.
    let handle: OpaquePointer
    /// Receives librdkafka's callbacks; its address is the conf opaque, so it lives as long as the handle.
    let callbacks: RDCallbacks
    private let blockingQueue: DispatchQueue
    private let closed = Mutex(false)
    /// The client's own hold on the handle, let go at close.
    private let ownHold: Mutex<RDHandleKeeper?>

    /// Creates the handle.
    /// - Parameters:
    ///   - type: Producer or consumer.
    ///   - properties: librdkafka properties, applied in order.
    ///   - callbacks: The callback receiver.
    ///   - configure: Installs type-specific callbacks on the conf before the handle is made.
    /// - Throws: ``KafkaError/Code/configuration`` with librdkafka's message for an unknown property or bad value.
    init(
        type: rd_kafka_type_t,
        properties: [(String, String)],
        callbacks: RDCallbacks,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(code: .configuration, reason: "librdkafka could not allocate a configuration")
        }
        var errstr = [CChar](repeating: 0, count: 512)
        for (name, value) in properties {
            let result = rd_kafka_conf_set(conf, name, value, &errstr, errstr.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                // librdkafka's text may name an alias of the key (linger.ms is queue.buffering.max.ms to it).
                throw KafkaError(
                    code: .configuration,
                    reason: "Property \(String(reflecting: name)) = \(String(reflecting: value)) is refused: \(String(rdErrorBuffer: errstr))"
                )
            }
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        rd_kafka_conf_set_log_cb(conf, rdLogCallback)
        if callbacks.statistics != nil { rd_kafka_conf_set_stats_cb(conf, rdStatisticsCallback) }
        if callbacks.offsetCommit != nil { rd_kafka_conf_set_offset_commit_cb(conf, rdOffsetCommitCallback) }
        if callbacks.errors != nil { rd_kafka_conf_set_error_cb(conf, rdErrorCallback) }
        configure(conf)
        // On success rd_kafka_new takes the conf; on failure it is still ours to free.
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, reason: String(rdErrorBuffer: errstr))
        }
        self.handle = handle
        self.callbacks = callbacks
        self.ownHold = Mutex(RDHandleKeeper(handle: handle, callbacks: callbacks))
        self.blockingQueue = DispatchQueue(label: "TracedKafka.\(type == RD_KAFKA_PRODUCER ? "producer" : "consumer")")
    }


    /// The client's name as librdkafka reports it (`rdkafka#producer-1`), for logs.
    var name: String { String(cString: rd_kafka_name(handle)) }

    /// Runs a quick call on the handle, or throws ``KafkaError/Code/shutDown`` once the client is closing.
    func withOpenHandle<T>(_ what: @autoclosure () -> String, _ body: (OpaquePointer) throws -> T) throws -> T {
        try closed.withLock { isClosed in
            guard !isClosed else { throw KafkaError.shutDown(what()) }
            return try body(handle)
        }
    }

    /// A hold on the handle for what must outlive close (consumed messages); `nil` once closed.
    func hold() -> RDHandleKeeper? { ownHold.withLock { $0 } }

    /// Whether ``close(_:)`` has begun.
    var isClosed: Bool { closed.withLock { $0 } }

    /// Runs a blocking call on the client's serial queue and awaits its result.
    /// - Throws: ``KafkaError/Code/shutDown`` when the client closed first, or what `body` throws.
    func blocking<T: Sendable>(
        _ what: String,
        _ body: @escaping @Sendable (OpaquePointer) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            blockingQueue.async { [self] in
                // Close runs on this same queue, so the handle cannot be destroyed while body runs.
                guard !isClosed else { return continuation.resume(throwing: KafkaError.shutDown(what)) }
                continuation.resume(with: Result { try body(handle) })
            }
        }
    }

    /// Closes the client once: marks it closed (new quick calls throw), runs `teardown` on the serial queue, then
    /// lets go of the handle (destroyed then, or with the last consumed message that still holds it). Later calls
    /// wait for the first one to finish.
    func close(_ teardown: @escaping @Sendable (OpaquePointer) -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            blockingQueue.async { [self] in
                let first = closed.withLock { isClosed in
                    defer { isClosed = true }
                    return !isClosed
                }
                if first {
                    teardown(handle)
                    // Nothing the client's owner logs or is told of comes from this handle any more.
                    callbacks.silence()
                    ownHold.withLock { $0 = nil }
                }
                continuation.resume()
            }
        }
    }
}

/// The receiver of librdkafka's callbacks for one handle; what they need, fixed before the handle exists.
final class RDCallbacks: @unchecked Sendable {
    let logger: Logger
    private let silenced = Atomic(false)

    /// After close: librdkafka's lines and callbacks go nowhere (a handle kept alive by messages still runs).
    func silence() { silenced.store(true, ordering: .releasing) }
    var isSilenced: Bool { silenced.load(ordering: .acquiring) }
    /// Called on the consumer's poll thread when the group assigns or revokes partitions.
    let rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)?

    /// Receives librdkafka's statistics JSON, when statistics are on.
    let statistics: (@Sendable (Data) -> Void)?

    /// Called on the thread that serves the consumer queue with the outcome of each commit librdkafka makes by
    /// itself (auto-commit on its interval and when partitions are let go); the application's own commits have
    /// callbacks of their own.
    let offsetCommit: (@Sendable (rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)?

    /// Receives librdkafka's errors (no broker reachable, authentication refused, a fatal error…) on the thread
    /// that serves the client's queue; without it librdkafka only logs them.
    let errors: ClientErrorReports?

    init(
        logger: Logger,
        statistics: (@Sendable (Data) -> Void)? = nil,
        offsetCommit: (@Sendable (rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)? = nil,
        errors: ClientErrorReports? = nil,
        rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)? = nil
    ) {
        self.logger = logger
        self.statistics = statistics
        self.offsetCommit = offsetCommit
        self.errors = errors
        self.rebalance = rebalance
    }

    /// The statistics callback that feeds the gauges, or `nil` when metrics or statistics are off.
    static func statisticsHandler(
        _ configuration: KafkaMetricsConfiguration,
        _ metrics: KafkaClientMetrics,
        consumer: Bool
    ) -> (@Sendable (Data) -> Void)? {
        guard metrics.isEnabled, configuration.statisticsInterval != nil else { return nil }
        return { json in RDStatistics.record(json, into: metrics, consumer: consumer) }
    }

    /// The receiver of a handle's callbacks (the conf opaque).
    static func of(_ handle: OpaquePointer?) -> RDCallbacks? {
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
        return Unmanaged<RDCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// librdkafka's log lines go to swift-log, never to stderr. Called on librdkafka's own threads.
private let rdLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, line in
    guard let callbacks = RDCallbacks.of(handle), !callbacks.isSilenced else { return }
    // syslog levels: 0-2 critical, 3 error, 4 warning, 5 notice, 6 info, 7 debug.
    let swiftLevel: Logger.Level
    switch level {
    case ...2: swiftLevel = .critical
    case 3: swiftLevel = .error
    case 4: swiftLevel = .warning
    case 5: swiftLevel = .notice
    case 6: swiftLevel = .info
    default: swiftLevel = .debug
    }
    callbacks.logger.log(
        level: swiftLevel,
        "\(line.map { String(cString: $0) } ?? "")",
        metadata: ["rdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")"],
        source: "librdkafka"
    )
}

extension String {
    /// The text librdkafka wrote into an error buffer (NUL-terminated).
    init(rdErrorBuffer buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Called on the thread that serves the client's queue. Returning 0 leaves the JSON buffer to librdkafka to free.
private let rdStatisticsCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    handle, json, length, _ in
    guard let json, let statistics = RDCallbacks.of(handle)?.statistics else { return 0 }
    statistics(Data(bytes: json, count: length))
    return 0
}

/// Called on the thread that serves the client's queue, for each error librdkafka reports.
private let rdErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    handle, err, reason, _ in
    guard let handle, let callbacks = RDCallbacks.of(handle), !callbacks.isSilenced, let errors = callbacks.errors else { return }
    let code = rd_kafka_resp_err_t(err)
    let text = reason.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(code))
    callbacks.logger.error("librdkafka error: \(KafkaError.RdKafkaCode(code)): \(text)")
    errors.report(code, text, isFatal: code == RD_KAFKA_RESP_ERR__FATAL, on: handle)
}

/// Called on the thread that serves the consumer queue (the poll thread, or the closing thread).
private let rdOffsetCommitCallback: @convention(c) (
    OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
) -> Void = { handle, err, offsets, _ in
    RDCallbacks.of(handle)?.offsetCommit?(err, offsets)
}

extension ClientErrorReports {
    /// A report from librdkafka's error event or callback.
    /// - Parameters:
    ///   - err: librdkafka's code.
    ///   - text: librdkafka's text, which names the broker.
    ///   - isFatal: Whether librdkafka says the client cannot go on; the fatal error's own code and text are read
    ///     from `handle` then.
    ///   - handle: The client.
    func report(_ err: rd_kafka_resp_err_t, _ text: String, isFatal: Bool, on handle: OpaquePointer) {
        report(isFatal ? .fatal(of: handle) : KafkaError(code: .rdKafka, reason: text, rdKafkaCode: KafkaError.RdKafkaCode(err)))
    }
}
