import DequeModule

/// Where a handed-out message came from: its partition's slot in the ``ConsumerStateMachine``, the slot's
/// generation when the message was fetched (a revocation or a seek starts a new one, so a late "handled" from before
/// it stores nothing), and its offset.
struct ConsumerPosition: Sendable, Hashable {
    var slot: Int32
    var generation: UInt32
    var offset: Int64
}

/// The whole state of one consumer, under one lock (``ConsumerCore``): its lifecycle, its subscription, the partitions
/// it owns (paused, lost, leaving), the read-ahead buffer and the one reader waiting on it, the message out with the
/// handler, the offsets stored for commit, and its fetcher's running and stopping.
///
/// A value type whose mutating methods decide and return what must happen; the caller does it outside the lock
/// (resuming continuations, waking the fetcher, calling librdkafka or the file system). The backends are I/O: they
/// report what they fetched, what the group assigned, revoked or lost, and errors, and carry out the actions.
/// It is unit-tested without any broker.
struct ConsumerStateMachine: ~Copyable {
    /// When offsets are stored for commit.
    enum StoreMode {
        /// When the message is handled (``KafkaConsumerConfiguration/CommitMode/afterHandled(interval:)``).
        case whenHandled
        /// When the message is handed out (``KafkaConsumerConfiguration/CommitMode/automatic(interval:)``).
        case whenHandedOut
        /// Never (``KafkaConsumerConfiguration/CommitMode/manual``, or a consumer without a group).
        case never
    }

    /// One partition the consumer owns, or owned.
    struct Slot {
        let partition: KafkaTopicPartition
        var owned: Bool
        var generation: UInt32 = 0
        var paused = false
        /// The next offset to commit, stored since the backend last took it (`dirty`) or before.
        var stored: Int64?
        var dirty = false
        /// The offset after the last message handed out, for ``position(of:)``.
        var delivered: Int64?
        /// Owned, but its topic is no longer subscribed: the group has yet to take it back. Its messages are dropped
        /// instead of handed out (what was handled of it is still stored, and committed when it goes).
        var leaving = false
        /// The offset of the first message dropped while leaving: where reading must go on from if its topic is
        /// subscribed again before the partition goes (the fetcher has read past it).
        var resumeAt: Int64?
    }

    /// A message as the fetcher hands it over, with its size for the buffer's byte bound (key and value).
    struct FetchedMessage {
        var message: KafkaConsumerMessage
        var size: Int
    }

    /// A buffered message.
    struct Entry {
        var message: KafkaConsumerMessage
        var position: ConsumerPosition
        var size: Int
    }

    /// The fetcher (a backend's thread).
    enum Fetcher: Equatable {
        case notStarted
        case running
        /// Blocked until the reader makes room (the reader wakes it).
        case waitingForRoom
        /// Asked to stop; it has not said it stopped yet.
        case stopping
        case stopped
    }

    /// The one task reading messages.
    enum Reader: UInt8 {
        /// Nobody registered yet.
        case none
        /// Registered and reading; it may be parked (``ConsumerStateMachine/parkedReader``).
        case reading
        /// Gone (its iterator was dropped, or its loop ended).
        case gone
    }

    /// How the messages ended.
    enum Ending {
        case shutdown
        case failure(KafkaError)
    }

    let storeMode: StoreMode
    private let capacity: Int
    private let byteCapacity: Int

    /// `run()` and shutdown, as the producer has them.
    var lifecycle = ClientLifecycle()
    private(set) var fetcher = Fetcher.notStarted
    private var fetcherStopWaiters: [CheckedContinuation<Void, Never>] = []
    private(set) var reader = Reader.none
    /// While the reader reads: whether a message it took is not yet followed by its next request.
    private(set) var readerIsHolding = false
    /// The reader, parked until a message arrives or the messages end.
    private var parkedReader: CheckedContinuation<Void, Never>?
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    private var entries = Deque<Entry>()
    private(set) var bufferedBytes = 0
    private(set) var ending: Ending?

    private(set) var slots: [Slot] = []
    private var slotIndex: [KafkaTopicPartition: Int32] = [:]
    private var anyDirty = false

    /// The topics the consumer subscribes to as a group member, in the order first named; `nil` for a consumer of
    /// given partitions, which has no subscription.
    private(set) var subscription: [String]?
    /// ``subscription`` as a set, for the check made per assigned partition.
    private var subscribed: Set<String> = []

    /// - Parameter subscription: The topics a group member starts subscribed to (duplicates are dropped), or `nil`
    ///   for a consumer of given partitions.
    init(storeMode: StoreMode, maxMessages: Int, maxBytes: Int, subscription: [String]? = nil) {
        self.storeMode = storeMode
        self.capacity = max(1, maxMessages)
        self.byteCapacity = max(1, maxBytes)
        if let subscription {
            self.subscription = Self.withoutDuplicates(subscription)
            self.subscribed = Set(subscription)
        }
    }

    var bufferedCount: Int { entries.count }
    private var isFull: Bool { bufferedCount >= capacity || bufferedBytes >= byteCapacity }
    /// The fetcher waiting for room is woken once the buffer has drained to half, not per message taken.
    private var hasRoomToResume: Bool { bufferedCount <= capacity / 2 && bufferedBytes <= byteCapacity / 2 }

    // MARK: - Reader

    /// The one reader registers; `false` when there already is (or was) one.
    mutating func registerReader() -> Bool {
        guard reader == .none else { return false }
        reader = .reading
        return true
    }

    /// What the reader does next.
    enum NextAction {
        /// Handle this message; wake the fetcher first when `wakeFetcher`.
        case message(KafkaConsumerMessage, ConsumerPosition, wakeFetcher: Bool)
        /// Nothing buffered: park (``parkReader(_:)``), then ask again.
        case wait
        /// The messages ended: `nil` after shutdown, or the failure.
        case end(KafkaError?)
    }

    /// The reader has handled `handled` (if any) and asks for the next message.
    mutating func next(after handled: ConsumerPosition?) -> NextAction {
        if let handled { markHandled(handled) }
        guard reader == .reading else { return .end(nil) }
        // Once shutdown is asked for, nothing more is handed out, buffered or not.
        guard lifecycle.acceptsWork else { return endNow() }
        if !entries.isEmpty {
            let entry = pop()
            readerIsHolding = true
            let wake = fetcher == .waitingForRoom && hasRoomToResume
            if wake { fetcher = .running }
            return .message(entry.message, entry.position, wakeFetcher: wake)
        }
        guard ending == nil else { return endNow() }
        readerIsHolding = false
        return .wait
    }

    /// The reader gets the end: the failure, if there was one, else `nil`.
    private mutating func endNow() -> NextAction {
        readerIsHolding = false
        if case .failure(let error) = ending { return .end(error) }
        return .end(nil)
    }

    /// What the reader of batches does next.
    enum BatchAction {
        /// Handle these messages (one at least); wake the fetcher first when `wakeFetcher`.
        case messages([Entry], wakeFetcher: Bool)
        case wait
        case end(KafkaError?)
    }

    /// The reader has handled `handled` and asks for up to `max` buffered messages at once.
    mutating func nextBatch(after handled: [ConsumerPosition], max: Int) -> BatchAction {
        for position in handled { markHandled(position) }
        guard reader == .reading else { return .end(nil) }
        guard bufferedCount > 0, lifecycle.acceptsWork else {
            switch next(after: nil) {
            case .message: preconditionFailure("nothing is buffered")
            case .wait: return .wait
            case .end(let error): return .end(error)
            }
        }
        var batch: [Entry] = []
        batch.reserveCapacity(Swift.min(Swift.max(1, max), bufferedCount))
        while batch.count < Swift.max(1, max), bufferedCount > 0 { batch.append(pop()) }
        readerIsHolding = true
        let wake = fetcher == .waitingForRoom && hasRoomToResume
        if wake { fetcher = .running }
        return .messages(batch, wakeFetcher: wake)
    }

    /// The reader parks until a message arrives or the messages end. Returns `false` when it must not wait
    /// (resume it at once).
    mutating func parkReader(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard reader == .reading, parkedReader == nil, bufferedCount == 0, ending == nil, lifecycle.acceptsWork else {
            return false
        }
        parkedReader = continuation
        return true
    }

    /// The parked reader's task was cancelled: the continuation to resume (it then throws).
    mutating func cancelReaderWait() -> CheckedContinuation<Void, Never>? {
        defer { parkedReader = nil }
        return parkedReader
    }

    /// The reader stopped without asking for more (its iterator was dropped, its handler threw): what it held is
    /// not handled. Returns the shutdown waiters to resume.
    mutating func readerGone() -> [CheckedContinuation<Void, Never>] {
        guard reader != .none else { return [] }
        reader = .gone
        readerIsHolding = false
        return takeIdleWaiters()
    }

    /// Shutdown waits until the reader holds no message. Returns `false` when it holds none now.
    mutating func waitUntilReaderIdle(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard readerIsHolding else { return false }
        idleWaiters.append(continuation)
        return true
    }

    /// The shutdown waiters to resume now that the reader holds no message (none while it does).
    mutating func takeIdleWaitersIfIdle() -> [CheckedContinuation<Void, Never>] {
        guard !readerIsHolding, !idleWaiters.isEmpty else { return [] }
        return takeIdleWaiters()
    }

    /// Shutdown stops waiting (its timeout passed): the waiters to resume.
    mutating func takeIdleWaiters() -> [CheckedContinuation<Void, Never>] {
        defer { idleWaiters = [] }
        return idleWaiters
    }

    private mutating func pop() -> Entry {
        let entry = entries.removeFirst()
        bufferedBytes -= entry.size
        let slot = Int(entry.position.slot)
        if slots[slot].generation == entry.position.generation {
            slots[slot].delivered = entry.position.offset + 1
            if storeMode == .whenHandedOut { store(entry.position.offset + 1, in: slot) }
        }
        return entry
    }

    private mutating func markHandled(_ position: ConsumerPosition) {
        guard storeMode == .whenHandled else { return }
        let slot = Int(position.slot)
        // A partition let go (or sought) since: its next owner reads the message again (at-least-once).
        guard slot < slots.count, slots[slot].owned, slots[slot].generation == position.generation else { return }
        store(position.offset + 1, in: slot)
    }

    private mutating func store(_ offset: Int64, in slot: Int) {
        if let stored = slots[slot].stored, stored >= offset, !slots[slot].dirty { return }
        slots[slot].stored = max(slots[slot].stored ?? offset, offset)
        slots[slot].dirty = true
        anyDirty = true
    }

    // MARK: - Messages ending

    /// What ending the messages asks for.
    struct EndAction {
        var resumeReader: CheckedContinuation<Void, Never>?
        var wakeFetcher: Bool
    }

    /// The messages end (shutdown, or a failure). Buffered messages are dropped, or with `deliveringBuffered`
    /// handed out first. The first ending wins.
    mutating func endMessages(_ ending: Ending, deliveringBuffered: Bool) -> EndAction {
        if self.ending == nil {
            self.ending = ending
            if !deliveringBuffered { dropAll() }
        }
        let action = EndAction(resumeReader: parkedReader, wakeFetcher: fetcher == .waitingForRoom)
        parkedReader = nil
        if action.wakeFetcher { fetcher = .running }
        return action
    }

    private mutating func dropAll() {
        entries.removeAll()
        bufferedBytes = 0
    }

    // MARK: - Fetcher

    /// Whether the caller must start the fetcher now (once, and never after close began).
    mutating func startFetcher() -> Bool {
        guard fetcher == .notStarted else { return false }
        fetcher = .running
        return true
    }

    /// Whether the fetcher must end its loop.
    var fetcherShouldStop: Bool { fetcher == .stopping || fetcher == .stopped }

    /// How many messages and bytes fit now; (0, 0) when full, ended or stopping.
    var room: (count: Int, bytes: Int) {
        guard ending == nil, !fetcherShouldStop, !isFull else { return (0, 0) }
        return (capacity - bufferedCount, byteCapacity - bufferedBytes)
    }

    /// What the fetcher does after handing over messages.
    struct FetchedAction {
        var resumeReader: CheckedContinuation<Void, Never>?
        /// The buffer is full: wait to be woken (or a short timeout) before fetching more.
        var waitForRoom: Bool
    }

    /// The fetcher hands over `messages` (emptied). Messages of partitions not owned or leaving, or offered after the
    /// messages ended, are dropped: never handed out, so never committed.
    mutating func fetched(_ messages: inout [FetchedMessage]) -> FetchedAction {
        defer { messages.removeAll(keepingCapacity: true) }
        guard ending == nil, !fetcherShouldStop else { return FetchedAction(resumeReader: nil, waitForRoom: false) }
        var lastSlot: Int32 = -1
        for fetched in messages {
            let message = fetched.message, size = fetched.size
            let slot: Int32
            if lastSlot >= 0, slots[Int(lastSlot)].partition.partition == message.partition,
                slots[Int(lastSlot)].partition.topic == message.topic
            {
                slot = lastSlot
            } else {
                slot = slotFor(KafkaTopicPartition(topic: message.topic, partition: message.partition), ownedIfNew: true)
                lastSlot = slot
            }
            guard slots[Int(slot)].owned else { continue }
            if slots[Int(slot)].leaving {
                if slots[Int(slot)].resumeAt == nil { slots[Int(slot)].resumeAt = message.offset }
                continue
            }
            let position = ConsumerPosition(slot: slot, generation: slots[Int(slot)].generation, offset: message.offset)
            entries.append(Entry(message: message, position: position, size: size))
            bufferedBytes += size
        }
        var action = FetchedAction(resumeReader: nil, waitForRoom: isFull)
        if bufferedCount > 0, let parked = parkedReader {
            parkedReader = nil
            action.resumeReader = parked
        }
        if action.waitForRoom { fetcher = .waitingForRoom }
        return action
    }

    /// The fetcher woke from waiting for room (woken, or its timeout passed).
    mutating func fetcherWoke() {
        if fetcher == .waitingForRoom { fetcher = .running }
    }

    /// What closing the fetcher asks for.
    enum StopFetcherAction {
        /// It never started (and now never will): nothing to wait for.
        case none
        /// Wait until it says it stopped (``fetcherStopped()``), with ``waitForFetcherStop(_:)``.
        case waitForStop
        /// It stopped already.
        case stopped
    }

    /// Close asks the fetcher to stop.
    mutating func stopFetcher() -> StopFetcherAction {
        switch fetcher {
        case .notStarted:
            fetcher = .stopped
            return .none  // no request can be queued: a request starts the fetcher
        case .running, .waitingForRoom:
            fetcher = .stopping
            return .waitForStop
        case .stopping:
            return .waitForStop
        case .stopped:
            return .stopped
        }
    }

    /// Close waits for the fetcher's end. Returns `false` when it has ended.
    mutating func waitForFetcherStop(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard fetcher != .stopped else { return false }
        fetcherStopWaiters.append(continuation)
        return true
    }

    /// The fetcher's loop ended: the close waiters to resume, and the requests it will never carry out.
    mutating func fetcherStopped() -> (waiters: [CheckedContinuation<Void, Never>], unserved: [FetcherRequest]) {
        fetcher = .stopped
        defer {
            fetcherStopWaiters = []
            fetcherRequests = []
        }
        return (fetcherStopWaiters, fetcherRequests)
    }

    // MARK: - Requests the fetcher carries out

    /// What the fetcher does between two fetches, so that nothing it fetched before is handed out after.
    enum FetcherRequest {
        /// Move an owned partition to `offset`; resume with the outcome.
        case seek(KafkaTopicPartition, KafkaOffset, CheckedContinuation<Void, any Error>)
        /// A leaving partition's topic is subscribed again: unless ``ConsumerStateMachine/rewindTarget(of:)`` says
        /// otherwise by then, fetch it again from the offset (the first one dropped), then
        /// ``ConsumerStateMachine/rewound(_:to:)``.
        case rewind(KafkaTopicPartition, Int64)

        /// Ends the request with `error`.
        func fail(_ error: KafkaError) {
            switch self {
            case .seek(_, _, let continuation): continuation.resume(throwing: error)
            case .rewind: break  // the partition goes with the consumer
            }
        }
    }

    private var fetcherRequests: [FetcherRequest] = []

    /// Queues a request for the fetcher. Returns whether to wake it (and start it first, when `startFetcher`);
    /// `nil` after the fetcher stopped (fail the request).
    mutating func request(_ request: FetcherRequest) -> (wake: Bool, startFetcher: Bool)? {
        switch fetcher {
        case .stopping, .stopped:
            return nil
        case .notStarted:
            fetcherRequests.append(request)
            fetcher = .running
            return (true, true)
        case .running, .waitingForRoom:
            fetcherRequests.append(request)
            return (true, false)
        }
    }

    /// The requests queued since the fetcher last looked.
    mutating func takeFetcherRequests() -> [FetcherRequest] {
        guard !fetcherRequests.isEmpty else { return [] }
        defer { fetcherRequests = [] }
        return fetcherRequests
    }

    /// Whether requests wait for the fetcher (a cheap check before ``takeFetcherRequests()``).
    var hasFetcherRequests: Bool { !fetcherRequests.isEmpty }

    // MARK: - Partitions

    private mutating func slotFor(_ partition: KafkaTopicPartition, ownedIfNew: Bool) -> Int32 {
        if let index = slotIndex[partition] { return index }
        let index = Int32(slots.count)
        slots.append(Slot(partition: partition, owned: ownedIfNew))
        slotIndex[partition] = index
        return index
    }

    /// Whether the consumer owns the partition now.
    func owns(_ partition: KafkaTopicPartition) -> Bool {
        slotIndex[partition].map { slots[Int($0)].owned } ?? false
    }

    /// The partitions owned now, in slot order.
    var ownedPartitions: [KafkaTopicPartition] { slots.filter(\.owned).map(\.partition) }

    /// The group (or the configuration) gave the consumer these partitions: each starts a new generation.
    mutating func assigned(_ partitions: [KafkaTopicPartition]) {
        for partition in partitions {
            let slot = Int(slotFor(partition, ownedIfNew: true))
            if !slots[slot].owned {
                slots[slot].owned = true
                slots[slot].generation &+= 1
            }
            if slots[slot].resumeAt == nil {
                // A group that was still dealing the old subscription can hand over a topic no longer subscribed:
                // it is taken back once the new subscription is dealt.
                slots[slot].leaving = subscription != nil && !subscribed.contains(partition.topic)
            }
            slots[slot].paused = false
            slots[slot].delivered = nil
        }
    }

    /// The partitions were taken away (`lost`: without the chance to commit). Their buffered messages are dropped;
    /// a later "handled" for them stores nothing. Returns the offsets stored for them and not yet taken, to commit
    /// before they go (none for lost partitions: their commits would be refused).
    mutating func revoked(_ partitions: [KafkaTopicPartition], lost: Bool) -> [KafkaTopicPartitionOffset] {
        var pending: [KafkaTopicPartitionOffset] = []
        var gone = Set<Int32>()
        for partition in partitions {
            guard let index = slotIndex[partition] else { continue }
            let slot = Int(index)
            if slots[slot].dirty, let stored = slots[slot].stored, !lost {
                pending.append(KafkaTopicPartitionOffset(topic: partition.topic, partition: partition.partition, offset: stored))
            }
            slots[slot].dirty = false
            // The next owner (this member again, maybe) starts from what the group committed, which may be below
            // what was stored here when the commit was refused: what it handles then is stored afresh.
            slots[slot].stored = nil
            slots[slot].owned = false
            slots[slot].paused = false
            slots[slot].leaving = false
            slots[slot].resumeAt = nil
            slots[slot].generation &+= 1
            gone.insert(index)
        }
        drop { gone.contains($0.position.slot) }
        return pending
    }

    // MARK: - Subscription

    /// What changing the subscription asks of the backend.
    struct SubscriptionChange {
        /// The subscription before the change, to go back to when the backend cannot make it.
        var previous: [String]
        /// Requests were queued for the fetcher (a ``FetcherRequest/rewind(_:_:)`` for each leaving partition whose
        /// topic is subscribed again after messages of it were dropped): wake it.
        var wakeFetcher: Bool
    }

    /// The consumer subscribes to `topics` instead of what it subscribed to (none: it subscribes to nothing).
    /// Owned partitions of topics no longer subscribed are leaving until the group takes them back: their buffered
    /// messages are dropped now and their later ones as they arrive, never handed out; a message of one already out
    /// with the handler still counts when handled (the partition is still this member's). A leaving partition whose
    /// topic is subscribed again is handed out from again: at once when nothing of it was dropped, else once the
    /// fetcher has gone back to the first dropped message (a ``FetcherRequest/rewind(_:_:)`` queued for it).
    /// - Throws: ``KafkaError/Code/shutDown`` once shutdown began; ``KafkaError/Code/noGroup`` for a consumer of
    ///   given partitions.
    mutating func subscribe(_ topics: [String]) throws -> SubscriptionChange {
        guard lifecycle.acceptsWork else { throw KafkaError.shutDown("The consumer") }
        guard let previous = subscription else {
            throw KafkaError(code: .noGroup, reason: "Cannot subscribe: the consumer reads given partitions, as no member of a group")
        }
        let topics = Self.withoutDuplicates(topics)
        subscription = topics
        subscribed = Set(topics)
        var newlyLeaving = Set<Int32>()
        var wakeFetcher = false
        for index in slots.indices where slots[index].owned {
            let wanted = subscribed.contains(slots[index].partition.topic)
            if !wanted, !slots[index].leaving {
                slots[index].leaving = true
                newlyLeaving.insert(Int32(index))
            } else if wanted, slots[index].leaving {
                if let resumeAt = slots[index].resumeAt {
                    // Still leaving (its messages dropped) until the fetcher has gone back there. Only a started
                    // fetcher owns partitions; a stopping one has nothing left to read.
                    if fetcher == .running || fetcher == .waitingForRoom {
                        fetcherRequests.append(.rewind(slots[index].partition, resumeAt))
                        wakeFetcher = true
                    }
                } else {
                    slots[index].leaving = false
                }
            }
        }
        if !newlyLeaving.isEmpty {
            for entry in entries where newlyLeaving.contains(entry.position.slot) {
                let slot = Int(entry.position.slot)
                if slots[slot].resumeAt == nil, entry.position.generation == slots[slot].generation {
                    slots[slot].resumeAt = entry.position.offset
                }
            }
            drop { newlyLeaving.contains($0.position.slot) }
        }
        if wakeFetcher, fetcher == .waitingForRoom { fetcher = .running }
        return SubscriptionChange(previous: previous, wakeFetcher: wakeFetcher)
    }

    /// Where the fetcher must go back to in a leaving partition before its messages are handed out again; `nil` when
    /// that is no longer so (it went, its topic is unsubscribed again, or it was rewound already).
    func rewindTarget(of partition: KafkaTopicPartition) -> Int64? {
        guard let index = slotIndex[partition] else { return nil }
        let slot = slots[Int(index)]
        guard slot.owned, slot.leaving, subscribed.contains(partition.topic) else { return nil }
        return slot.resumeAt
    }

    /// The fetcher went back to `offset` in a partition whose topic is subscribed again (after
    /// ``rewindTarget(of:)`` gave it that offset): its messages are handed out again from there.
    mutating func rewound(_ partition: KafkaTopicPartition, to offset: Int64) {
        guard rewindTarget(of: partition) == offset, let index = slotIndex[partition] else { return }
        slots[Int(index)].leaving = false
        slots[Int(index)].resumeAt = nil
    }

    /// Whether an owned partition's topic is no longer subscribed (the group has yet to take it back).
    func isLeaving(_ partition: KafkaTopicPartition) -> Bool {
        slotIndex[partition].map { slots[Int($0)].owned && slots[Int($0)].leaving } ?? false
    }

    /// `topics` in the order first named, each once.
    static func withoutDuplicates(_ topics: [String]) -> [String] {
        var seen = Set<String>()
        return topics.filter { seen.insert($0).inserted }
    }

    /// Drops the buffered messages that `matches`.
    private mutating func drop(where matches: (Entry) -> Bool) {
        guard bufferedCount > 0 else { return }
        entries.removeAll(where: matches)
        bufferedBytes = entries.reduce(0) { $0 + $1.size }
    }

    /// The stored offsets not yet taken, for the backend to store or commit; they count as taken.
    mutating func takeStoredOffsets() -> [KafkaTopicPartitionOffset] {
        guard anyDirty else { return [] }
        anyDirty = false
        var offsets: [KafkaTopicPartitionOffset] = []
        for index in slots.indices where slots[index].dirty {
            slots[index].dirty = false
            guard slots[index].owned, let stored = slots[index].stored else { continue }
            offsets.append(KafkaTopicPartitionOffset(
                topic: slots[index].partition.topic, partition: slots[index].partition.partition, offset: stored
            ))
        }
        return offsets
    }

    /// Every owned partition's stored offset, taken by the backend or not: what the consumer would commit now.
    func storedOffsets() -> [KafkaTopicPartitionOffset] {
        slots.compactMap { slot in
            guard slot.owned, let stored = slot.stored else { return nil }
            return KafkaTopicPartitionOffset(topic: slot.partition.topic, partition: slot.partition.partition, offset: stored)
        }
    }

    /// Whether there are stored offsets not yet taken (a cheap check before ``takeStoredOffsets()``).
    var hasStoredOffsets: Bool { anyDirty }

    /// Pauses or resumes owned partitions.
    /// - Throws: ``KafkaError/Code/notAssigned`` naming the partitions not owned; nothing changes then.
    mutating func setPaused(_ partitions: [KafkaTopicPartition], _ paused: Bool) throws {
        try requireOwned(partitions, for: paused ? "pause" : "resume")
        for partition in partitions { slots[Int(slotIndex[partition]!)].paused = paused }
    }

    /// Whether an owned partition is paused.
    func isPaused(_ partition: KafkaTopicPartition) -> Bool {
        slotIndex[partition].map { slots[Int($0)].paused } ?? false
    }

    /// Throws ``KafkaError/Code/notAssigned`` unless every partition is owned.
    func requireOwned(_ partitions: [KafkaTopicPartition], for what: String) throws {
        let missing = partitions.filter { !owns($0) }
        guard missing.isEmpty else {
            throw KafkaError(
                code: .notAssigned,
                reason: "Cannot \(what) \(missing.map(\.description).joined(separator: ", ")): not assigned to this consumer "
                    + "(it owns \(ownedPartitions.isEmpty ? "no partitions" : ownedPartitions.map(\.description).joined(separator: ", ")))"
            )
        }
    }

    /// The consumer moves an owned partition to `offset`: its buffered messages and the messages out are of
    /// the old position (a new generation), and the position to commit is the new one until a message after it
    /// is handled.
    /// - Throws: ``KafkaError/Code/notAssigned`` when the partition is not owned.
    mutating func seek(_ partition: KafkaTopicPartition, to offset: Int64) throws {
        try requireOwned([partition], for: "seek")
        let slot = Int(slotIndex[partition]!)
        slots[slot].generation &+= 1
        slots[slot].delivered = offset
        let index = Int32(slot)
        drop { $0.position.slot == index }
        if storeMode != .never {
            slots[slot].stored = offset
            slots[slot].dirty = true
            anyDirty = true
        }
    }

    /// The offset of the next message ``KafkaConsumer/messages`` hands out for an owned partition, when the
    /// consumer knows it: the first buffered one, else the one after the last handed out (or the seek target).
    /// `nil` when only the backend knows (nothing fetched or handed out yet).
    func position(of partition: KafkaTopicPartition) -> Int64? {
        guard let index = slotIndex[partition], slots[Int(index)].owned else { return nil }
        for entry in entries where entry.position.slot == index && entry.position.generation == slots[Int(index)].generation {
            return entry.position.offset
        }
        return slots[Int(index)].delivered
    }
}
