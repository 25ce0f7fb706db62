import Logging

/// How a ``KafkaProducer`` connects and sends.
///
/// The typed fields cover what most services set. Anything else librdkafka understands (SASL, TLS, retries,
/// batching…) goes into ``properties`` under librdkafka's own names
/// (see librdkafka's CONFIGURATION.md); a raw property wins over a typed field that maps to the same name.
public struct KafkaProducerConfiguration: Sendable {
    /// How many acknowledgements the leader waits for before it answers a produce request. A struct with static
    /// members, so values can be added without breaking anybody's `switch`.
    public struct Acks: Sendable, Hashable, CustomStringConvertible {
        /// librdkafka's value for `acks`.
        let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// No acknowledgement (`acks=0`): fastest, records may be lost silently.
        public static let none = Acks("0")
        /// The leader's acknowledgement only (`acks=1`).
        public static let leader = Acks("1")
        /// Every in-sync replica's acknowledgement (`acks=all`), the default.
        public static let all = Acks("all")

        /// librdkafka's value.
        public var description: String { rawValue }
    }

    /// The compression codec for record batches. A struct with static members, so codecs can be added without
    /// breaking anybody's `switch`.
    public struct Compression: Sendable, Hashable, CustomStringConvertible {
        /// librdkafka's value for `compression.codec`.
        let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// No compression.
        public static let none = Compression("none")
        /// gzip.
        public static let gzip = Compression("gzip")
        /// Snappy.
        public static let snappy = Compression("snappy")
        /// LZ4.
        public static let lz4 = Compression("lz4")
        /// Zstandard.
        public static let zstd = Compression("zstd")

        /// librdkafka's value.
        public var description: String { rawValue }
    }

    /// The brokers to bootstrap from, as `host:port` strings (for the librdkafka backend).
    public var bootstrapServers: [String]
    /// Where records go: a Kafka cluster through librdkafka (the default), or the local file queue.
    public var backend: KafkaBackend
    /// Messaging metrics through swift-metrics (on by default, to `MetricsSystem.factory`).
    public var metrics: KafkaMetricsConfiguration
    /// The client id reported to the brokers (`client.id`) and recorded as `messaging.client.id` on spans, the
    /// statistics gauges and log lines; `nil` names the client `producer-N`, N counting the producers made in this
    /// process.
    public var clientID: String?
    /// Acknowledgements to wait for (`acks`).
    public var acks: Acks
    /// Idempotent delivery (`enable.idempotence`): no duplicates and per-partition order across retries.
    public var idempotence: Bool
    /// The transactional id (`transactional.id`) that makes the producer transactional, or `nil` (the default).
    ///
    /// A transactional producer sends only inside ``KafkaProducer/withTransaction(timeout:_:)``; its records become
    /// visible to `read_committed` consumers when the transaction commits. The id must stay the same across
    /// restarts of one logical producer: a new instance with the same id fences the old one. It implies idempotence
    /// and needs ``acks`` ``Acks/all``. The file queue has no transactions: it refuses a transactional id with
    /// ``KafkaError/Code/unsupported``.
    public var transactionalID: String?
    /// How long the broker lets a transaction stay open before it aborts it (`transaction.timeout.ms`, 60 s).
    public var transactionTimeout: Duration
    /// How long to wait for more records before sending a batch (`linger.ms`); `nil` keeps librdkafka's default.
    public var linger: Duration?
    /// The compression codec (`compression.codec`); `nil` keeps librdkafka's default.
    public var compression: Compression?
    /// How long graceful shutdown waits for queued records to be delivered before it fails the rest.
    public var shutdownTimeout: Duration
    /// The largest record accepted, in bytes: its key, value and header keys and values together (the headers the
    /// record carries, not the trace headers the producer adds to it). Larger records are refused at once with
    /// ``KafkaError/Code/invalidRecord``, on both backends. The default, 1,000,000, is librdkafka's
    /// `message.max.bytes` default; librdkafka's own limit is set 16 KiB above it (room for its framing and the
    /// trace headers), so this is the limit that decides. A raw `message.max.bytes` in ``properties`` replaces it, for
    /// this check too, and librdkafka's limit is then set 16 KiB above the raw value. A broker still refuses records
    /// above its own `message.max.bytes`.
    public var maxMessageBytes: Int
    /// Tracing: spans and trace context in record headers.
    public var tracing: KafkaTracingConfiguration
    /// TLS and SASL (plaintext by default); raw ``properties`` win over what it sets.
    public var security: KafkaSecurity
    /// Raw librdkafka properties, applied after the typed fields. An unknown name or invalid value makes
    /// ``KafkaProducer/init(configuration:logger:)`` throw with librdkafka's message.
    public var properties: [String: String]

    /// Creates a configuration.
    /// - Parameters:
    ///   - bootstrapServers: The brokers to bootstrap from, as `host:port` (for the librdkafka backend).
    ///   - clientID: The client id, if any.
    ///   - acks: Acknowledgements to wait for.
    ///   - idempotence: Whether delivery is idempotent.
    ///   - transactionalID: The transactional id, or `nil` for a producer without transactions.
    ///   - transactionTimeout: How long the broker lets a transaction stay open.
    ///   - linger: Batching delay, or `nil` for librdkafka's default.
    ///   - compression: Compression codec, or `nil` for librdkafka's default.
    ///   - shutdownTimeout: How long shutdown waits for delivery of queued records.
    ///   - maxMessageBytes: The largest record accepted (key, value and the record's headers).
    ///   - tracing: Spans and trace context in record headers.
    ///   - security: TLS and SASL settings.
    ///   - backend: librdkafka (the default) or the local file queue.
    ///   - metrics: Messaging metrics through swift-metrics.
    ///   - properties: Raw librdkafka properties.
    public init(
        bootstrapServers: [String] = [],
        clientID: String? = nil,
        acks: Acks = .all,
        idempotence: Bool = false,
        transactionalID: String? = nil,
        transactionTimeout: Duration = .seconds(60),
        linger: Duration? = nil,
        compression: Compression? = nil,
        shutdownTimeout: Duration = .seconds(30),
        maxMessageBytes: Int = 1_000_000,
        tracing: KafkaTracingConfiguration = .enabled,
        security: KafkaSecurity = .plaintext,
        backend: KafkaBackend = .librdkafka,
        metrics: KafkaMetricsConfiguration = .enabled,
        properties: [String: String] = [:]
    ) {
        self.tracing = tracing
        self.security = security
        self.backend = backend
        self.metrics = metrics
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.acks = acks
        self.idempotence = idempotence
        self.transactionalID = transactionalID
        self.transactionTimeout = transactionTimeout
        self.linger = linger
        self.compression = compression
        self.shutdownTimeout = shutdownTimeout
        self.maxMessageBytes = maxMessageBytes
        self.properties = properties
    }

    /// What librdkafka's `message.max.bytes` gets above ``maxMessageBytes``.
    static let rdKafkaFramingAllowance = 16 << 10

    /// The largest record the producer takes (key, value and the record's headers): ``maxMessageBytes``, or the raw
    /// `message.max.bytes` property when one is given (a raw property wins over the typed field it maps to). Either
    /// way librdkafka gets ``rdKafkaFramingAllowance`` above it. Parsed on each use: read it once.
    var recordSizeLimit: Int { rawMessageMaxBytes ?? maxMessageBytes }

    /// The raw `message.max.bytes` property as a number, when one is given.
    private var rawMessageMaxBytes: Int? { properties["message.max.bytes"].flatMap { Int($0) } }

    /// The librdkafka properties this configuration stands for, raw properties last.
    /// - Throws: ``KafkaError/Code/configuration`` for security settings that cannot work, or a transactional id
    ///   that is empty or comes with acks other than ``Acks/all``.
    func rdKafkaProperties() throws -> [(String, String)] {
        guard properties["transactional.id"] == nil else {
            throw KafkaError(
                code: .configuration,
                reason: "Set transactionalID rather than the raw transactional.id property: the producer must know that "
                    + "it sends in transactions"
            )
        }
        if let transactionalID {
            guard !transactionalID.isEmpty else {
                throw KafkaError(code: .configuration, reason: "The transactional id is empty; use nil for a producer without transactions")
            }
            guard acks == .all else {
                throw KafkaError(code: .configuration, reason: "A transactional producer needs acks .all (it has \(acks))")
            }
        }
        var result: [(String, String)] = [
            ("bootstrap.servers", bootstrapServers.joined(separator: ",")),
            ("acks", acks.rawValue),
            ("enable.idempotence", idempotence || transactionalID != nil ? "true" : "false"),
            // The Java client's partitioner, so a key lands on the same partition whichever language sends it.
            ("partitioner", "murmur2_random"),
            // librdkafka also counts header framing: a little room above the limit the producer checks itself.
            ("message.max.bytes", String(min(1_000_000_000, max(1_000, recordSizeLimit + Self.rdKafkaFramingAllowance)))),
        ]
        if let clientID { result.append(("client.id", clientID)) }
        if let transactionalID {
            result.append(("transactional.id", transactionalID))
            result.append(("transaction.timeout.ms", String(max(1, transactionTimeout.milliseconds))))
        }
        if let statistics = metrics.rdKafkaStatisticsProperty { result.append(statistics) }
        if let linger { result.append(("linger.ms", String(linger.milliseconds))) }
        if let compression { result.append(("compression.codec", compression.rawValue)) }
        result.append(contentsOf: try security.rdKafkaProperties())
        // A raw message.max.bytes that is a number stands for maxMessageBytes (above): librdkafka gets the allowance
        // above it too. One that is not goes as it is, for librdkafka to refuse.
        let raw = rawMessageMaxBytes == nil ? properties : properties.filter { $0.key != "message.max.bytes" }
        result.append(contentsOf: raw.sorted { $0.key < $1.key })
        // Every awaited send is completed by its delivery report: success reports must not be switched off.
        result.append(("delivery.report.only.error", "false"))
        return result
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down, never negative.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
