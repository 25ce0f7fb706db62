import CRdKafka

/// An error thrown by TracedKafka: misuse and bad input detected by the library, or a failure reported by librdkafka.
///
/// Match on ``code`` to decide what to do; ``reason`` is a human-readable explanation. Errors that come from
/// librdkafka also carry its numeric error code (``rdKafkaCode``) and its symbolic name (``rdKafkaName``), so
/// they can be looked up in librdkafka's documentation.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// The kind of a ``KafkaError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case configuration, invalidRecord, shutDown, alreadyRunning, noTopics, timedOut, rdKafka, cancelled, fileQueue
            case corruptRecord, unknownPartition, invalidOffset, notAssigned, noGroup, topicAlreadyExists, notAuthorized
            case unsupported, transactionAborted, notInTransaction, fatal
        }

        private let backing: Backing

        /// A configuration property is unknown, or its value is invalid. The reason is librdkafka's own message.
        public static let configuration = Code(backing: .configuration)
        /// A record cannot be sent as it is, for example because its topic name is empty.
        public static let invalidRecord = Code(backing: .invalidRecord)
        /// The client has been shut down (or is shutting down) and takes no more work.
        public static let shutDown = Code(backing: .shutDown)
        /// `run()` was called a second time on the same client.
        public static let alreadyRunning = Code(backing: .alreadyRunning)
        /// A consumer was configured with nothing to read: no group to subscribe in, no topic and no partition (or
        /// with an empty topic name).
        public static let noTopics = Code(backing: .noTopics)
        /// An operation with a timeout did not complete in time.
        public static let timedOut = Code(backing: .timedOut)
        /// librdkafka or the broker reported an error; see ``KafkaError/rdKafkaCode`` and ``KafkaError/rdKafkaName``.
        public static let rdKafka = Code(backing: .rdKafka)
        /// The task that awaited the operation was cancelled.
        public static let cancelled = Code(backing: .cancelled)
        /// The file queue's directory or files can't be used: not writable, not a file queue, a newer format
        /// version, or an I/O error. The reason names the path and the system's explanation.
        public static let fileQueue = Code(backing: .fileQueue)
        /// A record in a file-queue log is damaged (its checksum or framing is wrong). The reason names the file
        /// and the byte offset.
        public static let corruptRecord = Code(backing: .corruptRecord)
        /// A topic or partition named in a call does not exist (or its name is not a valid Kafka topic name).
        /// librdkafka's own answers for it keep their ``KafkaError/rdKafkaCode`` (`UNKNOWN_TOPIC_OR_PART`,
        /// `_UNKNOWN_PARTITION`).
        public static let unknownPartition = Code(backing: .unknownPartition)
        /// An offset given to a call is out of range (negative, or past what the partition holds).
        public static let invalidOffset = Code(backing: .invalidOffset)
        /// A call names a partition this consumer does not own now (seek, pause, resume, position).
        public static let notAssigned = Code(backing: .notAssigned)
        /// A call needs a consumer group (commit, committed offsets) and the consumer reads its partitions without
        /// one, or needs group membership (subscribe, unsubscribe) and the consumer reads given partitions.
        public static let noGroup = Code(backing: .noGroup)
        /// A topic to be created exists already.
        public static let topicAlreadyExists = Code(backing: .topicAlreadyExists)
        /// The cluster refused the call for lack of rights (`TOPIC_AUTHORIZATION_FAILED`,
        /// `CLUSTER_AUTHORIZATION_FAILED`).
        public static let notAuthorized = Code(backing: .notAuthorized)
        /// The backend cannot do what was asked (transactions on the file queue).
        public static let unsupported = Code(backing: .unsupported)
        /// A transaction was aborted instead of committed: a record in it failed, the broker refused the commit
        /// with an abortable error, or the commit did not finish in time. Its records are not visible to
        /// `read_committed` consumers; the producer takes the next transaction. ``KafkaError/rdKafkaCode`` holds
        /// the cause when librdkafka or the broker reported one.
        public static let transactionAborted = Code(backing: .transactionAborted)
        /// A call needs an open transaction and there is none: a plain send on a transactional producer, or a
        /// ``KafkaTransaction`` used after its ``KafkaProducer/withTransaction(timeout:_:)`` returned.
        public static let notInTransaction = Code(backing: .notInTransaction)
        /// The client hit an error it cannot recover from (for a producer: fenced by a newer instance with the
        /// same transactional id, or its producer id expired) and has stopped; every later call fails with this
        /// same error. Make a new client.
        public static let fatal = Code(backing: .fatal)

        /// The name of the code, for logs.
        public var description: String { backing.rawValue }
    }

    /// What went wrong, broadly.
    public let code: Code
    /// What went wrong, in words.
    public let reason: String
    /// librdkafka's error code, when the error comes from librdkafka or the broker.
    public let rdKafkaCode: RdKafkaCode?
    /// librdkafka's own verdict on retrying, where it gave one (`rd_kafka_error_is_retriable`).
    private let retriableVerdict: Bool?

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of error.
    ///   - reason: A human-readable explanation.
    ///   - rdKafkaCode: librdkafka's error code, if the error comes from librdkafka.
    public init(code: Code, reason: String, rdKafkaCode: RdKafkaCode? = nil) {
        self.init(code: code, reason: reason, rdKafkaCode: rdKafkaCode, retriable: nil)
    }

    init(code: Code, reason: String, rdKafkaCode: RdKafkaCode?, retriable: Bool?) {
        self.code = code
        self.reason = reason
        self.rdKafkaCode = rdKafkaCode
        self.retriableVerdict = retriable
    }

    /// librdkafka's symbolic name for ``rdKafkaCode`` (for example `_MSG_TIMED_OUT` or `UNKNOWN_TOPIC_OR_PART`).
    public var rdKafkaName: String? { rdKafkaCode?.name }

    /// Whether the same call may succeed if made again later: librdkafka's verdict where it gives one, else the
    /// librdkafka code's (``RdKafkaCode/isRetriable``), else the library's code (``Code/timedOut`` is retriable).
    /// Never for a fatal error, a refused input, a cancellation or a shutdown.
    public var isRetriable: Bool {
        guard !isFatal else { return false }
        if let retriableVerdict { return retriableVerdict }
        if let rdKafkaCode { return rdKafkaCode.isRetriable }
        return code == .timedOut
    }

    /// Whether the client that threw it has stopped for good (``Code/fatal``, or librdkafka's fatal codes: a fenced
    /// producer, an expired producer id): make a new client.
    public var isFatal: Bool {
        code == .fatal || rdKafkaCode.map(RdKafkaCode.fatalCodes.contains) == true
    }

    /// A one-line description: the code, librdkafka's error name where there is one, and the reason.
    public var description: String {
        if let name = rdKafkaName {
            return "KafkaError.\(code) (\(name)): \(reason)"
        }
        return "KafkaError.\(code): \(reason)"
    }
}

extension KafkaError {
    /// An error for a librdkafka response code, with librdkafka's own text for it.
    static func rdKafka(_ err: rd_kafka_resp_err_t, context: String? = nil) -> KafkaError {
        let code = RdKafkaCode(err)
        return KafkaError(
            code: RdKafkaCode.unknownPartitionCodes.contains(code) ? .unknownPartition : RdKafkaCode.fatalCodes.contains(code) ? .fatal : .rdKafka,
            reason: context.map { "\($0): \(code.text)" } ?? code.text,
            rdKafkaCode: code
        )
    }

    /// Takes over an `rd_kafka_error_t` (its code, text and librdkafka's verdict on retrying) and frees it.
    static func consuming(_ error: OpaquePointer) -> KafkaError {
        // The error object is ours: read it, then free it (every rd_kafka_error_t must be destroyed).
        defer { rd_kafka_error_destroy(error) }
        return KafkaError(
            code: rd_kafka_error_is_fatal(error) != 0 ? .fatal : .rdKafka,
            reason: String(cString: rd_kafka_error_string(error)),
            rdKafkaCode: RdKafkaCode(rd_kafka_error_code(error)),
            retriable: rd_kafka_error_is_retriable(error) != 0
        )
    }

    /// The fatal error that stopped a librdkafka client (after librdkafka reported `RD_KAFKA_RESP_ERR__FATAL`): its
    /// own code and text, read from the client.
    static func fatal(of handle: OpaquePointer) -> KafkaError {
        var text = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &text, text.count)
        return KafkaError(code: .fatal, reason: String(rdErrorBuffer: text), rdKafkaCode: RdKafkaCode(err))
    }

    /// `error.type` for spans and metrics, a bounded set: for a ``KafkaError``, librdkafka's error name where it has
    /// one (`_MSG_TIMED_OUT`, `UNKNOWN_TOPIC_OR_PART`), else its code (`timedOut`, `invalidRecord`); for any other
    /// error (a handler's), its type's fully qualified name (`Billing.PaymentDeclined`), as the conventions ask of an
    /// exception's type. A private or local type's name has no "unknown context" part.
    static func errorType(of error: any Error) -> String {
        if let kafkaError = error as? KafkaError { return kafkaError.rdKafkaName ?? kafkaError.code.description }
        return qualifiedName(of: type(of: error))
    }

    /// A type's module-qualified name, without the `(unknown context at $…).` parts of private and local types.
    static func qualifiedName(of type: Any.Type) -> String {
        var name = String(reflecting: type)
        while let start = name.range(of: "(unknown context at "), let end = name[start.upperBound...].range(of: ").") {
            name.removeSubrange(start.lowerBound..<end.upperBound)
        }
        return name
    }

    /// A span's status description for a failure: what went wrong, without the type that `error.type` already names
    /// (a ``KafkaError``'s ``reason``; another error's own description).
    static func statusDescription(of error: any Error) -> String {
        (error as? KafkaError)?.reason ?? String(describing: error)
    }

    static func shutDown(_ what: String) -> KafkaError {
        KafkaError(code: .shutDown, reason: "\(what) has been shut down")
    }
}

extension KafkaError {
    /// A commit past the partition's end.
    static func commitPastEnd(_ offset: KafkaTopicPartitionOffset, end: Int64) -> KafkaError {
        KafkaError(
            code: .invalidOffset,
            reason: "Cannot commit offset \(offset.offset) of \(offset.topic)[\(offset.partition)]: the partition ends at \(end) "
                + "(the offset of its next record), and a group that committed it would skip every record until then"
        )
    }

    /// A consumer's reader whose task was cancelled while it waited for messages.
    static let cancelledWait = KafkaError(code: .cancelled, reason: "The wait for the next message was cancelled")

    /// A flush whose task was cancelled.
    static let flushCancelled = KafkaError(
        code: .cancelled,
        reason: "The flush was cancelled; the records already sent are still being delivered"
    )
}

extension Task where Success == Never, Failure == Never {
    /// Throws ``KafkaError/Code/cancelled`` when the current task is cancelled before `record` is handed over.
    static func checkCancellation(unsent record: KafkaProducerRecord) throws {
        guard Task.isCancelled else { return }
        throw KafkaError(
            code: .cancelled,
            reason: "The send to '\(record.topic)' was cancelled before the record was handed over; it was not sent"
        )
    }
}
