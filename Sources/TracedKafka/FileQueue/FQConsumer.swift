#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import Synchronization

/// The file-queue consumer backend: a consumer-group member on a queue directory (or a reader of given
/// partitions), I/O for the ``ConsumerCore``.
///
/// Membership: each member holds an exclusive `flock` on its file in `groups/<group>/members/`, which says what it
/// subscribes to (``FQMember``); a member whose file can be locked by someone else is dead (the kernel dropped its
/// lock) and its file is removed. Every member deals the partitions of the topics the live members subscribe to
/// over those members (``FQAssignor``), and owns a partition only while it holds that partition's lock file — so no
/// two members ever read one partition at once, and a crashed member's partitions go to the others at their next
/// check (every 200 ms, and at once when a member file changes). A change of subscription rewrites the member
/// file in place and is dealt at once: the partitions of topics no longer subscribed are let go (committing what
/// was handled), the new topics' taken as their previous owners let go. A member commits a partition's stored
/// offset before it lets go of it; the next owner starts from the committed offset. A consumer of given partitions
/// takes no part in any of that: it reads them from where it was told.
final class FQConsumer: KafkaConsumerBackend, @unchecked Sendable {
    private let directory: FQDirectory
    private let configuration: KafkaConsumerConfiguration
    private let options: KafkaFileQueueConfiguration
    private let core: ConsumerCore
    private let logger: Logger
    private let metrics: KafkaClientMetrics
    /// This member's id and file (`nil` for a consumer of given partitions, which joins no group). The file is
    /// written on the subscription queue only.
    private let membership: (id: String, directory: String, file: FQFile)?
    /// Changes of subscription, one at a time, each written to the member file.
    private let subscriptionQueue = DispatchQueue(label: "TracedKafka.fileQueue.subscription")
    /// The subscription changed since the fetch thread last dealt the partitions.
    private let subscriptionChanged = Atomic(false)
    private let monitor: FQChangeMonitor
    private let commitQueue = DispatchQueue(label: "TracedKafka.fileQueue.commit")
    /// Where a partition's reading started, until it has read something (for ``fetchPosition(_:)``).
    private let startOffsets = Mutex<[KafkaTopicPartition: Int64]>([:])
    private let closed = Mutex(false)

    // Owned by the fetch thread.
    private var readers: [KafkaTopicPartition: (lock: FQFile?, reader: FQPartitionReader)] = [:]
    private var failed = false
    /// Counts fetch rounds, to rotate which partition is read first.
    private var fetchRound = 0
    /// Partition counts of the group's topics found so far (a topic's count never changes).
    private var partitionCounts: [String: Int] = [:]
    /// What each other member's file said when it was last read whole.
    private var knownSubscriptions: [String: FQMember.Subscription] = [:]

    private static let rebalanceInterval = Duration.milliseconds(200)
    private static let batchSize = 512

    init(
        configuration: KafkaConsumerConfiguration,
        options: KafkaFileQueueConfiguration,
        core: ConsumerCore,
        logger: Logger,
        metrics: KafkaClientMetrics
    ) throws {
        let directory = try FQDirectory(path: options.directory)
        self.metrics = metrics
        self.directory = directory
        self.configuration = configuration
        self.options = options
        self.core = core
        self.logger = logger
        self.monitor = try FQChangeMonitor()
        if let group = configuration.groupID { try directory.prepareGroup(group) }
        if configuration.readsGivenPartitions {
            membership = nil
            for start in configuration.partitions {
                guard let count = try directory.partitionCount(of: start.topic), start.partition < count else {
                    throw KafkaError(code: .unknownPartition, reason: "\(start.topicPartition) does not exist in \(options.directory)")
                }
            }
            core.assigned(configuration.partitions.map(\.topicPartition))
        } else {
            let id = FQDirectory.memberID(clientID: configuration.clientID)
            // Locked before it gets its name, so no other member ever sees it unlocked and takes it for dead.
            let members = directory.membersDirectory(configuration.groupID ?? "")
            let joining = "\(members)/.\(id)"
            let file = try FQFile(creating: joining)
            try file.lock(exclusive: true)
            do {
                try file.write(Array(FQMember.fileContent(subscribing: core.subscription ?? []).utf8), at: 0)
            } catch {
                // A full disk still lets a consumer join (creating the file took no data block): its empty file
                // counts for every topic with the others, as a member of an older version does.
                logger.warning("Could not write this member's subscription; the other members take it to subscribe to every topic", metadata: ["error": "\(error)"])
            }
            guard rename(joining, "\(members)/\(id)") == 0 else { throw FQFile.error("Cannot join the group in \(members)") }
            membership = (id, members, file)
        }
    }

    deinit {
        if let membership { unlink("\(membership.directory)/\(membership.id)") }
    }

    func spawnFetcher() {
        let thread = Thread { [self] in
            fetchLoop()
            core.fetcherStopped()
        }
        thread.name = "TracedKafka.fileQueue.fetch"
        thread.start()
    }

    func wakeFetcher() { monitor.wake() }

    func subscribe(_ topics: [String]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            subscriptionQueue.async { [self] in
                continuation.resume(with: Result { try changeSubscription(to: topics) })
            }
        }
    }

    /// On the subscription queue: the core first (its buffered messages of dropped topics go), then the member file
    /// the other members deal by; the fetch thread deals the partitions again at once.
    private func changeSubscription(to topics: [String]) throws {
        guard !closed.withLock({ $0 }) else { throw KafkaError.shutDown("The consumer") }
        let previous = try core.subscribe(topics, wake: monitor.wake)
        if let membership {
            do {
                try Self.write(FQMember.fileContent(subscribing: topics), to: membership.file)
            } catch {
                _ = try? core.subscribe(previous, wake: monitor.wake)
                throw error
            }
        }
        subscriptionChanged.store(true, ordering: .releasing)
        monitor.wake()
    }

    /// Rewrites a member file in place: its `flock` stays, as the others' liveness check needs.
    private static func write(_ content: String, to file: FQFile) throws {
        let bytes = Array(content.utf8)
        try file.write(bytes, at: 0)
        try file.truncate(to: Int64(bytes.count))
    }

    /// The group's name; only read for a consumer in a group.
    private var group: String { configuration.groupID ?? "" }

    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws {
        guard !offsets.isEmpty else { return }
        guard !closed.withLock({ $0 }) else { throw KafkaError.shutDown("The consumer") }
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
            try requireWithinPartition(offset)
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commitQueue.async { [self] in
                continuation.resume(with: Result { try write(offsets) })
            }
        }
    }

    /// Refuses to commit past a partition's end (the offset its next record gets): the group's next member would
    /// skip every record written until the partition reached it. An offset at or before one this consumer handed
    /// out or holds is within; another is checked against the log.
    private func requireWithinPartition(_ offset: KafkaTopicPartitionOffset) throws {
        let partition = KafkaTopicPartition(topic: offset.topic, partition: offset.partition)
        if let known = core.machine.withLock({ $0.position(of: partition) }), offset.offset <= known { return }
        let reader = FQPartitionReader(
            path: directory.logPath(partition), partition: partition, start: .earliest, policy: options.corruptRecords, logger: logger
        )
        let (_, end) = try reader.bounds()
        guard offset.offset <= end else { throw KafkaError.commitPastEnd(offset, end: end) }
    }

    func committed(_ partitions: [KafkaTopicPartition], timeout: Duration) async throws -> [KafkaTopicPartition: Int64] {
        guard !closed.withLock({ $0 }) else { throw KafkaError.shutDown("The consumer") }
        var result: [KafkaTopicPartition: Int64] = [:]
        for partition in partitions {
            if let offset = try committedOffset(partition) { result[partition] = offset }
        }
        return result
    }

    private func committedOffset(_ partition: KafkaTopicPartition) throws -> Int64? {
        guard let text = try FQFile.text(at: directory.offsetPath(group, partition)) else { return nil }
        return Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func fetchPosition(_ partition: KafkaTopicPartition) throws -> Int64? {
        startOffsets.withLock { $0[partition] }
    }

    func groupMetadata() throws -> RDGroupMetadata {
        throw KafkaError(code: .unsupported, reason: "The file queue has no transactions")
    }

    func pause(_ partitions: [KafkaTopicPartition]) throws {
        guard !closed.withLock({ $0 }) else { throw KafkaError.shutDown("The consumer") }
    }

    func resume(_ partitions: [KafkaTopicPartition]) throws {
        guard !closed.withLock({ $0 }) else { throw KafkaError.shutDown("The consumer") }
        monitor.wake()
    }

    func close() async {
        let first = closed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        // Leaving the group: the others take this member's partitions at their next check.
        if let membership {
            unlink("\(membership.directory)/\(membership.id)")
            membership.file.unlock()
        }
    }

    // MARK: - Fetch thread

    private func fetchLoop() {
        let clock = ContinuousClock()
        var nextRebalance = clock.now
        var nextCommit = clock.now + commitInterval
        if let membership { monitor.watch(membership.directory) }
        monitor.watch("\(directory.root)/topics")
        if configuration.readsGivenPartitions { openGivenPartitions() }
        var changed: Set<String> = []
        while !core.fetcherShouldStop {
            let resubscribed = subscriptionChanged.exchange(false, ordering: .acquiring)
            if resubscribed || clock.now >= nextRebalance || changed.contains(membership?.directory ?? "") {
                rebalance()  // a consumer of given partitions has nothing to rebalance: this only bounds its waits
                nextRebalance = clock.now + Self.rebalanceInterval
            }
            if clock.now >= nextCommit {
                commitStored(releasing: [])
                nextCommit = clock.now + commitInterval
            }
            for request in core.takeFetcherRequests() { carryOut(request) }
            changed = []
            let room = core.room
            let deadline = min(nextRebalance, nextCommit)
            if room.count == 0 {
                // The handler is behind: wait for it to drain the buffer, but never past the next commit or
                // rebalance, so those keep their schedule however long the buffer stays full.
                core.waitForRoom(max(.milliseconds(1), deadline - clock.now))
            } else if fetch(room) == 0 {
                changed = monitor.wait(timeout: deadline - clock.now)
            }
        }
        // Leaving: commit what was handled, then let every partition go.
        let owned = Array(readers.keys).sorted(by: Self.order)
        release(owned)
    }

    private var commitInterval: Duration {
        configuration.commitMode.interval.map { max($0, .milliseconds(1)) } ?? .seconds(3600)
    }

    /// Reads new records of the owned, unpaused partitions into the core, no more than fits in `room`, starting
    /// with a different partition each round. Returns how many were read.
    private func fetch(_ room: (count: Int, bytes: Int)) -> Int {
        guard !failed else { return 0 }
        var total = 0
        var room = room
        let order = readers.keys.sorted(by: Self.order)
        fetchRound &+= 1
        let first = order.isEmpty ? 0 : fetchRound % order.count
        var batch: [ConsumerStateMachine.FetchedMessage] = []
        for partition in order[first...] + order[..<first] {
            guard room.count > 0, room.bytes > 0 else { break }
            // Nothing of a partition leaving (its topic unsubscribed) would be handed out: it is not read.
            guard let owned = readers[partition], !core.machine.withLock({ $0.isPaused(partition) || $0.isLeaving(partition) }) else { continue }
            do {
                let (messages, skipped) = try owned.reader.read(max: min(Self.batchSize, room.count), maxBytes: room.bytes)
                for error in skipped { core.emit(.error(error)) }
                guard !messages.isEmpty else { continue }
                startOffsets.withLock { $0[partition] = nil }
                total += messages.count
                room.count -= messages.count
                for message in messages {
                    let size = (message.key?.count ?? 0) + (message.value?.count ?? 0)
                    room.bytes -= size
                    batch.append(ConsumerStateMachine.FetchedMessage(message: message, size: size))
                }
                core.fetched(&batch, maxWait: .zero)
            } catch {
                let kafkaError = error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")
                logger.error("The consumer stops", metadata: ["error": "\(kafkaError)"])
                failed = true
                // The records before the damage are good: they are handed out before the error.
                core.fail(kafkaError, deliveringBuffered: true)
                return 0
            }
        }
        return total
    }

    private func carryOut(_ request: ConsumerStateMachine.FetcherRequest) {
        switch request {
        case .seek(let partition, let offset, let continuation):
            continuation.resume(with: Result {
                try core.machine.withLock { try $0.requireOwned([partition], for: "seek") }
                guard let owned = readers[partition] else {
                    throw KafkaError(code: .notAssigned, reason: "Cannot seek \(partition): it is not being read yet")
                }
                let (low, high) = try owned.reader.bounds()
                let target = try offset.resolve(low: low, high: high, in: partition)
                readers[partition] = (owned.lock, makeReader(partition, start: .offset(target)))
                try core.machine.withLock { try $0.seek(partition, to: target) }
            })
        case .rewind(let partition, let offset):
            // Its topic is subscribed again before this member let it go: read again from the first dropped record.
            guard core.machine.withLock({ $0.rewindTarget(of: partition) }) == offset, let owned = readers[partition] else { return }
            readers[partition] = (owned.lock, makeReader(partition, start: .offset(offset)))
            core.machine.withLock { $0.rewound(partition, to: offset) }
        }
    }

    private func makeReader(_ partition: KafkaTopicPartition, start: FQPartitionReader.Start) -> FQPartitionReader {
        if case .offset(let offset) = start { startOffsets.withLock { $0[partition] = offset } }
        return FQPartitionReader(
            path: directory.logPath(partition), partition: partition, start: start, policy: options.corruptRecords, logger: logger
        )
    }

    /// A consumer of given partitions: a reader for each, from its configured offset.
    private func openGivenPartitions() {
        for start in configuration.partitions {
            do {
                let position: FQPartitionReader.Start
                switch start.offset.position {
                case .beginning: position = .earliest
                case .end: position = .latest
                case .absolute(let offset): position = .offset(offset)
                case .committed: position = try startPosition(start.topicPartition)
                case .tail(let count):
                    let probe = makeReader(start.topicPartition, start: .earliest)
                    let (low, high) = try probe.bounds()
                    position = .offset(max(low, high - count))
                }
                readers[start.topicPartition] = (nil, makeReader(start.topicPartition, start: position))
                monitor.watch(directory.topicDirectory(start.topic))
            } catch {
                core.emit(.error(error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")))
            }
        }
    }

    /// Recomputes this member's share of the partitions; lets go of the others and takes the free ones.
    private func rebalance() {
        guard let membership else { return }
        let subscription = core.subscription ?? []
        let members = liveMembers(membership, subscribing: subscription)
        // Every topic some member subscribes to is dealt (a topic of another member's shifts the deal); a member
        // that does not say what it subscribes to counts for each of them.
        var topics = Set(subscription)
        for member in members { if case .topics(let theirs) = member.subscription { topics.formUnion(theirs) } }
        var counts: [String: Int] = [:]
        for topic in topics {
            if partitionCounts[topic] == nil { partitionCounts[topic] = try? directory.partitionCount(of: topic) }
            counts[topic] = partitionCounts[topic]
        }
        for topic in subscription where counts[topic] != nil { monitor.watch(directory.topicDirectory(topic)) }
        let desired = Set(FQAssignor.share(of: membership.id, among: members, partitionCounts: counts))
        let revoked = readers.keys.filter { !desired.contains($0) }.sorted(by: Self.order)
        if !revoked.isEmpty { release(revoked) }
        var assigned: [KafkaTopicPartition] = []
        for partition in desired.sorted(by: Self.order) where readers[partition] == nil {
            do {
                try FQFile.makeChildDirectory(directory.lockDirectory(group, partition.topic))
                let lock = try FQFile(creating: directory.lockPath(group, partition))
                // Still held by its previous owner: taken at a later check, once it lets go.
                guard try lock.lock(exclusive: true, wait: false) else { continue }
                readers[partition] = (lock, makeReader(partition, start: try startPosition(partition)))
                assigned.append(partition)
            } catch {
                logger.warning("Could not take a partition", metadata: ["partition": "\(partition)", "error": "\(error)"])
                core.emit(.error(error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")))
            }
        }
        if !assigned.isEmpty {
            logger.debug("Partitions assigned: \(assigned)")
            core.assigned(assigned)
        }
    }

    private func startPosition(_ partition: KafkaTopicPartition) throws -> FQPartitionReader.Start {
        if configuration.hasGroup, let offset = try committedOffset(partition) { return .offset(offset) }
        switch configuration.autoOffsetReset.kind {
        case .earliest: return .earliest
        case .latest: return .latest
        case .error:
            throw KafkaError(
                code: .configuration,
                reason: "\(partition) has no committed offset for group \(group) and "
                    + "autoOffsetReset is .error"
            )
        }
    }

    /// The group's live members and what they subscribe to, this one with `subscription`; removes the files of dead
    /// ones.
    private func liveMembers(_ membership: (id: String, directory: String, file: FQFile), subscribing subscription: [String]) -> [FQMember] {
        let path = membership.directory
        var live: [FQMember] = [FQMember(id: membership.id, subscription: .topics(Set(subscription)))]
        var known: [String: FQMember.Subscription] = [:]
        for name in FQFile.names(in: path) where !name.hasPrefix(".") && name != membership.id {
            guard let file = try? FQFile.open("\(path)/\(name)", writable: false) else { continue }
            if (try? file.lock(exclusive: false, wait: false)) == true {
                // Nobody holds it: its member died without leaving.
                unlink("\(path)/\(name)")
                file.unlock()
                continue
            }
            // Caught half rewritten: what it said before, until the next read.
            let text = (try? file.read(at: 0, count: Int(max(0, (try? file.size) ?? 0)))).map { String(decoding: $0, as: UTF8.self) }
            let theirs = text.flatMap(FQMember.subscription(inFile:)) ?? knownSubscriptions[name] ?? .everything
            known[name] = theirs
            live.append(FQMember(id: name, subscription: theirs))
        }
        knownSubscriptions = known
        return live
    }

    /// Lets `partitions` go: the core drops their buffered messages and hands back what was stored for them,
    /// which is committed (with everything else stored) before their locks are released.
    private func release(_ partitions: [KafkaTopicPartition]) {
        guard !partitions.isEmpty else { return }
        let pending = core.revoked(partitions, lost: false)
        commitStored(releasing: partitions, pending: pending)
        for partition in partitions { readers[partition] = nil }  // closing the lock file releases its lock
    }

    private func commitStored(releasing partitions: [KafkaTopicPartition], pending: [KafkaTopicPartitionOffset] = []) {
        let stored = pending + core.takeStoredOffsets()
        guard !stored.isEmpty, configuration.hasGroup else { return }
        do {
            try commitQueue.sync { try write(stored) }
            metrics.recordOwnCommit(error: nil)
        } catch {
            metrics.recordOwnCommit(error: error)
            logger.error("Commit failed", metadata: ["error": "\(error)", "partitions": "\(partitions)"])
            core.emit(.error(error as? KafkaError ?? KafkaError(code: .fileQueue, reason: "\(error)")))
        }
    }

    /// Writes committed offsets, each file replaced atomically.
    private func write(_ offsets: [KafkaTopicPartitionOffset]) throws {
        for offset in offsets {
            let partition = KafkaTopicPartition(topic: offset.topic, partition: offset.partition)
            try FQFile.makeChildDirectory(directory.offsetDirectory(group, offset.topic))
            try FQFile.replace(
                directory.offsetPath(group, partition),
                with: "\(offset.offset)\n",
                sync: options.durability != .none
            )
        }
    }

    private static func order(_ a: KafkaTopicPartition, _ b: KafkaTopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}
