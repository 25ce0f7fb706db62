#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import Synchronization

/// The file-queue consumer backend: a consumer-group member on a queue directory.
///
/// Membership: each member holds an exclusive `flock` on its file in `groups/<group>/members/`; a member whose
/// file can be locked by someone else is dead (the kernel dropped its lock) and its file is removed. Every member
/// deals the subscribed topics' partitions round-robin over the sorted live members, and owns a partition only
/// while it holds that partition's lock file — so no two members ever read one partition at once, and a crashed
/// member's partitions go to the others at their next check (every 200 ms). A member commits a partition's stored
/// offset before it lets go of it; the next owner starts from the committed offset.
final class FQConsumer: KafkaConsumerBackend, @unchecked Sendable {
    private let directory: FQDirectory
    private let configuration: KafkaConsumerConfiguration
    private let options: KafkaFileQueueConfiguration
    private let buffer: ConsumerMessageBuffer
    private let logger: Logger
    private let events: AsyncStream<KafkaConsumerEvent>.Continuation?
    private let memberID: String
    /// `groups/<group>/members`, computed once.
    private let membersDirectory: String
    private let memberFile: FQFile
    private let monitor: FQChangeMonitor
    private let commitQueue = DispatchQueue(label: "TracedKafka.fileQueue.commit")
    private let finished = FQThreadCompletion()

    private struct Shared {
        var started = false
        var closed = false
        var stopRequested = false
        /// Partitions this member owns now; offsets of others are not stored.
        var owned: Set<KafkaTopicPartition> = []
        var paused: Set<KafkaTopicPartition> = []
        /// Stored offsets not committed yet.
        var stored: [KafkaTopicPartition: Int64] = [:]
    }

    private let shared = Mutex(Shared())

    // Owned by the fetch thread.
    private var readers: [KafkaTopicPartition: (lock: FQFile, reader: FQPartitionReader)] = [:]
    private var failed = false
    /// Counts fetch rounds, to rotate which partition is read first.
    private var fetchRound = 0
    /// Partition counts of the subscribed topics found so far (a topic's count never changes).
    private var partitionCounts: [String: Int] = [:]

    private static let rebalanceInterval = Duration.milliseconds(200)
    private static let batchSize = 512

    init(
        configuration: KafkaConsumerConfiguration,
        options: KafkaFileQueueConfiguration,
        buffer: ConsumerMessageBuffer,
        logger: Logger,
        events: AsyncStream<KafkaConsumerEvent>.Continuation?
    ) throws {
        guard !configuration.groupID.isEmpty else {
            throw KafkaError(code: .configuration, reason: "The consumer configuration has an empty group id")
        }
        let directory = try FQDirectory(path: options.directory)
        self.directory = directory
        self.configuration = configuration
        self.options = options
        self.buffer = buffer
        self.logger = logger
        self.events = events
        self.monitor = try FQChangeMonitor()
        let group = configuration.groupID
        try directory.prepareGroup(group)
        memberID = FQDirectory.memberID(clientID: configuration.clientID)
        // Locked before it gets its name, so no other member ever sees it unlocked and takes it for dead.
        let members = directory.membersDirectory(group)
        membersDirectory = members
        let joining = "\(members)/.\(memberID)"
        memberFile = try FQFile(creating: joining)
        try memberFile.lock(exclusive: true)
        guard rename(joining, "\(members)/\(memberID)") == 0 else { throw FQFile.error("Cannot join the group in \(members)") }
    }

    deinit {
        unlink("\(membersDirectory)/\(memberID)")
    }

    func start() {
        let start = shared.withLock { state in
            defer { state.started = true }
            return !state.started && !state.closed
        }
        guard start else { return }
        let thread = Thread { [self] in
            fetchLoop()
            finished.markDone()
        }
        thread.name = "TracedKafka.fileQueue.fetch"
        thread.start()
    }

    func storeOffsets(after messages: [KafkaConsumerMessage]) {
        guard !messages.isEmpty else { return }
        shared.withLock { state in
            for message in messages {
                let partition = KafkaTopicPartition(topic: message.topic, partition: message.partition)
                // A partition given away since: its next owner reads the message again (at-least-once).
                guard state.owned.contains(partition) else { continue }
                state.stored[partition] = max(state.stored[partition] ?? 0, message.offset + 1)
            }
        }
    }

    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws {
        guard !offsets.isEmpty else { return }
        guard !shared.withLock({ $0.closed }) else { throw KafkaError.shutDown("The consumer") }
        for offset in offsets {
            // As a broker does: a commit names partitions that exist (the topic was validated by the consumer).
            let count = try directory.partitionCount(of: offset.topic)
            guard let count, offset.partition < count else {
                throw KafkaError(
                    code: .unknownPartition,
                    reason: "Cannot commit \(offset.topic)[\(offset.partition)]: "
                        + (count.map { "the topic has \($0) partitions" } ?? "the topic does not exist")
                )
            }
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commitQueue.async { [self] in
                continuation.resume(with: Result { try write(offsets) })
            }
        }
    }

    func pause(_ partitions: [KafkaTopicPartition]) throws {
        try shared.withLock { state in
            guard !state.closed else { throw KafkaError.shutDown("The consumer") }
            state.paused.formUnion(partitions)
        }
    }

    func resume(_ partitions: [KafkaTopicPartition]) throws {
        try shared.withLock { state in
            guard !state.closed else { throw KafkaError.shutDown("The consumer") }
            state.paused.subtract(partitions)
        }
        monitor.wake()
    }

    func close() async {
        let (first, started) = shared.withLock { state in
            defer {
                state.closed = true
                state.stopRequested = true
            }
            return (!state.closed, state.started)
        }
        guard first else {
            // A second, racing close: done when the first one's fetch thread is.
            if started { await finished.wait() }
            return
        }
        if started {
            monitor.wake()
            await finished.wait()
        }
        // Leaving the group: the others take this member's partitions at their next check.
        unlink("\(membersDirectory)/\(memberID)")
        memberFile.unlock()
        buffer.finish()
        events?.finish()
    }

    // MARK: - Fetch thread

    private var stopRequested: Bool { shared.withLock { $0.stopRequested } }

    private func fetchLoop() {
        let clock = ContinuousClock()
        var nextRebalance = clock.now
        var nextCommit = clock.now + commitInterval
        monitor.watch(membersDirectory)
        monitor.watch("\(directory.root)/topics")
        var changed: Set<String> = []
        while !stopRequested {
            if clock.now >= nextRebalance || changed.contains(membersDirectory) {
                rebalance()
                nextRebalance = clock.now + Self.rebalanceInterval
            }
            if clock.now >= nextCommit {
                commitStored(releasing: [])
                nextCommit = clock.now + commitInterval
            }
            changed = []
            let room = buffer.room()
            if room.count == 0 {
                // The handler is behind: wait for it to drain the buffer, but never past the next commit or
                // rebalance, so those keep their schedule however long the buffer stays full.
                buffer.waitForRoom(until: min(nextRebalance, nextCommit))
            } else if fetch(room) == 0 {
                changed = monitor.wait(timeout: min(nextRebalance, nextCommit) - clock.now)
            }
        }
        // Leaving: commit what was handled, then let every partition go.
        let owned = Array(readers.keys)
        release(owned)
        if !owned.isEmpty { events?.yield(.partitionsRevoked(owned.sorted(by: Self.order))) }
    }

    private var commitInterval: Duration {
        switch configuration.commitMode {
        case .afterHandled(let interval), .automatic(let interval): return max(interval, .milliseconds(1))
        case .manual: return .seconds(3600)
        }
    }

    /// Reads new records of the owned, unpaused partitions into the buffer, no more than fits in `room`, starting
    /// with a different partition each round. Returns how many were read.
    private func fetch(_ room: (count: Int, bytes: Int)) -> Int {
        guard !failed else { return 0 }
        let paused = shared.withLock { $0.paused }
        var total = 0
        var room = room
        let order = readers.keys.sorted(by: Self.order)
        fetchRound &+= 1
        let first = order.isEmpty ? 0 : fetchRound % order.count
        for partition in order[first...] + order[..<first] where !paused.contains(partition) {
            guard room.count > 0, room.bytes > 0, let owned = readers[partition] else { break }
            do {
                let (messages, skipped) = try owned.reader.read(max: min(Self.batchSize, room.count), maxBytes: room.bytes)
                for error in skipped { events?.yield(.error(error)) }
                guard !messages.isEmpty else { continue }
                total += messages.count
                room.count -= messages.count
                room.bytes -= messages.reduce(0) { $0 + ConsumerMessageBuffer.size(of: $1) }
                buffer.append(messages, shouldStop: { self.stopRequested })
            } catch {
                let kafkaError = error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")
                logger.error("The consumer stops", metadata: ["error": "\(kafkaError)"])
                failed = true
                // The records before the damage are good: they are handed out before the error.
                buffer.finish(error: kafkaError, deliveringBuffered: true)
                return 0
            }
        }
        return total
    }

    /// Recomputes this member's share of the partitions; lets go of the others and takes the free ones.
    private func rebalance() {
        let members = liveMembers()
        guard let index = members.firstIndex(of: memberID) else { return }
        var all: [KafkaTopicPartition] = []
        for topic in configuration.topics.sorted() {
            if partitionCounts[topic] == nil { partitionCounts[topic] = try? directory.partitionCount(of: topic) }
            guard let count = partitionCounts[topic] else { continue }
            monitor.watch(directory.topicDirectory(topic))
            all += (0..<count).map { KafkaTopicPartition(topic: topic, partition: $0) }
        }
        let desired = Set(all.enumerated().filter { $0.offset % members.count == index }.map(\.element))
        let revoked = readers.keys.filter { !desired.contains($0) }
        if !revoked.isEmpty {
            release(revoked)
            events?.yield(.partitionsRevoked(revoked.sorted(by: Self.order)))
        }
        var assigned: [KafkaTopicPartition] = []
        for partition in desired.sorted(by: Self.order) where readers[partition] == nil {
            do {
                try FQFile.makeChildDirectory(directory.lockDirectory(configuration.groupID, partition.topic))
                let lock = try FQFile(creating: directory.lockPath(configuration.groupID, partition))
                // Still held by its previous owner: taken at a later check, once it lets go.
                guard try lock.lock(exclusive: true, wait: false) else { continue }
                let reader = FQPartitionReader(
                    path: directory.logPath(partition), partition: partition,
                    start: try startPosition(partition), policy: options.corruptRecords, logger: logger
                )
                readers[partition] = (lock, reader)
                shared.withLock { _ = $0.owned.insert(partition) }
                assigned.append(partition)
            } catch {
                logger.warning("Could not take a partition", metadata: ["partition": "\(partition)", "error": "\(error)"])
                events?.yield(.error(error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")))
            }
        }
        if !assigned.isEmpty {
            logger.debug("Partitions assigned: \(assigned)")
            events?.yield(.partitionsAssigned(assigned))
        }
    }

    private func startPosition(_ partition: KafkaTopicPartition) throws -> FQPartitionReader.Start {
        if let text = try FQFile.text(at: directory.offsetPath(configuration.groupID, partition)),
            let offset = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            return .offset(offset)
        }
        switch configuration.autoOffsetReset {
        case .earliest: return .earliest
        case .latest: return .latest
        case .error:
            throw KafkaError(
                code: .configuration,
                reason: "\(partition) has no committed offset for group \(configuration.groupID) and "
                    + "autoOffsetReset is .error"
            )
        }
    }

    /// The sorted ids of the group's live members; removes the files of dead ones.
    private func liveMembers() -> [String] {
        let path = membersDirectory
        var live: [String] = []
        for name in FQFile.names(in: path) where !name.hasPrefix(".") {
            if name == memberID {
                live.append(name)
                continue
            }
            guard let file = try? FQFile.open("\(path)/\(name)", writable: false) else { continue }
            if (try? file.lock(exclusive: false, wait: false)) == true {
                // Nobody holds it: its member died without leaving.
                unlink("\(path)/\(name)")
                file.unlock()
            } else {
                live.append(name)
            }
        }
        return live.sorted()
    }

    /// Commits stored offsets (all, and before they are let go, those of `partitions`), then lets `partitions` go.
    private func release(_ partitions: [KafkaTopicPartition]) {
        shared.withLock { state in state.owned.subtract(partitions) }
        buffer.drop(partitions: Set(partitions))
        commitStored(releasing: partitions)
        for partition in partitions { readers[partition] = nil }  // closing the lock file releases its lock
    }

    private func commitStored(releasing partitions: [KafkaTopicPartition]) {
        let stored = shared.withLock { state in
            defer { state.stored = [:] }
            return state.stored
        }
        guard !stored.isEmpty else { return }
        let offsets = stored.map { KafkaTopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) }
        do {
            try commitQueue.sync { try write(offsets) }
        } catch {
            logger.error("Commit failed", metadata: ["error": "\(error)", "partitions": "\(partitions)"])
            events?.yield(.error(error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")))
        }
    }

    /// Writes committed offsets, each file replaced atomically.
    private func write(_ offsets: [KafkaTopicPartitionOffset]) throws {
        for offset in offsets {
            let partition = KafkaTopicPartition(topic: offset.topic, partition: offset.partition)
            try FQFile.makeChildDirectory(directory.offsetDirectory(configuration.groupID, offset.topic))
            try FQFile.replace(
                directory.offsetPath(configuration.groupID, partition),
                with: "\(offset.offset)\n",
                sync: options.durability != .none
            )
        }
    }

    private static func order(_ a: KafkaTopicPartition, _ b: KafkaTopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}
