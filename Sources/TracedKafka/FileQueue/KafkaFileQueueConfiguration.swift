/// How the local file-backed queue stores records (see ``KafkaBackend/fileQueue(_:)``).
///
/// The on-disk format is described in `Docs/FileQueueFormat.md`.
public struct KafkaFileQueueConfiguration: Sendable, Hashable {
    /// When appended records are forced to the disk with `fsync`. Every choice makes an acknowledged record part of
    /// the file before the acknowledgement, so it survives a crash of the process; they differ in what survives a
    /// crash of the machine (power loss, kernel panic) and in speed.
    /// A struct with static members, so settings can be added without breaking anybody's `switch`.
    public struct Durability: Sendable, Hashable {
        enum Kind: Hashable {
            case none
            case perRecord
            case perBatch
            case interval(Duration)
        }

        let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// Never `fsync`: records live in the operating system's page cache until it writes them back. Fastest; a
        /// machine crash may lose the last seconds of acknowledged records. The default, fine for tests.
        public static let none = Durability(.none)
        /// `fsync` after every record, before it is acknowledged. Nothing acknowledged is ever lost, at the cost of
        /// one disk flush per record (typically 0.1–10 ms each).
        public static let perRecord = Durability(.perRecord)
        /// `fsync` once per written batch (all records queued while the previous batch was written), before the
        /// batch is acknowledged. Nothing acknowledged is lost; the cost of a flush is shared by the batch.
        public static let perBatch = Durability(.perBatch)
        /// `fsync` in the background at most every `interval`; records are acknowledged before. A machine crash may
        /// lose up to `interval` of acknowledged records.
        /// - Parameter interval: The longest time between two flushes.
        public static func interval(_ interval: Duration) -> Durability { Durability(.interval(interval)) }

        /// The flush interval of ``interval(_:)``.
        var syncInterval: Duration? {
            if case .interval(let interval) = kind { return interval }
            return nil
        }
    }

    /// What a consumer does with a record whose checksum is wrong in the middle of a partition file. A struct with
    /// static members, so policies can be added without breaking anybody's `switch`.
    public struct CorruptRecordPolicy: Sendable, Hashable {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// Stop: the consumer's messages end with a ``KafkaError/Code/corruptRecord`` error that names the file and
        /// the byte offset. The default.
        public static let fail = CorruptRecordPolicy("fail")
        /// Skip the damaged bytes up to the next intact record, log a warning and report a
        /// ``KafkaConsumerEvent/Kind/error`` event naming the file and offset.
        public static let skip = CorruptRecordPolicy("skip")
    }

    /// The queue's directory; created (with its parents) when missing.
    public var directory: String
    /// When appended records are forced to the disk.
    public var durability: Durability
    /// How many partitions a topic gets when a producer first writes to it.
    /// ``KafkaFileQueue/createTopic(_:partitions:in:)`` creates a topic with another count.
    public var defaultPartitionCount: Int
    /// What consumers do with a corrupt record.
    public var corruptRecords: CorruptRecordPolicy
    /// How many records a producer holds before they are written; ``KafkaProducer/send(_:)`` waits for room
    /// beyond that.
    public var maxQueuedRecords: Int

    /// Creates a configuration.
    /// - Parameters:
    ///   - directory: The queue's directory; created when missing.
    ///   - durability: When appended records are forced to the disk.
    ///   - defaultPartitionCount: Partitions of a topic created by its first record.
    ///   - corruptRecords: What consumers do with a corrupt record.
    ///   - maxQueuedRecords: How many records a producer holds before they are written.
    public init(
        directory: String,
        durability: Durability = .none,
        defaultPartitionCount: Int = 1,
        corruptRecords: CorruptRecordPolicy = .fail,
        maxQueuedRecords: Int = 100_000
    ) {
        self.directory = directory
        self.durability = durability
        self.defaultPartitionCount = defaultPartitionCount
        self.corruptRecords = corruptRecords
        self.maxQueuedRecords = maxQueuedRecords
    }
}
