import Dispatch
import Synchronization

/// A consumer's ``ConsumerStateMachine`` under its lock, shared by the ``KafkaConsumer`` and its backend, and the
/// side effects its actions ask for: resuming the reader and shutdown's waiters, waking the fetcher, emitting events.
///
/// The backend's fetcher (a dedicated thread) reports into it — messages fetched, partitions assigned, revoked or
/// lost, failures — and blocks here while the buffer is full; the consumer's one reader takes messages from it.
final class ConsumerCore: ClientLifecycleLocking {
    let machine: Mutex<ConsumerStateMachine>
    /// Where events go, when the consumer was made with them.
    let events: BoundedEventStream<KafkaConsumerEvent>?
    /// The fetcher waits here while the buffer is full; the reader signals it once there is room.
    private let fetcherGate = DispatchSemaphore(value: 0)

    init(
        storeMode: ConsumerStateMachine.StoreMode,
        maxMessages: Int,
        maxBytes: Int,
        subscription: [String]? = nil,
        events: BoundedEventStream<KafkaConsumerEvent>?
    ) {
        machine = Mutex(ConsumerStateMachine(storeMode: storeMode, maxMessages: maxMessages, maxBytes: maxBytes, subscription: subscription))
        self.events = events
    }

    func emit(_ event: KafkaConsumerEvent) { events?.yield(event) }

    func withLifecycle<R>(_ body: (inout ClientLifecycle) throws -> R) rethrows -> R {
        try machine.withLock { try body(&$0.lifecycle) }
    }

    // MARK: - Reader

    /// What the reader gets now after `handled`, without waiting: a message (the fetcher already woken when it
    /// asked for that), `.wait` (then ``waitForMessages()`` and ask again), or the end.
    func take(after handled: ConsumerPosition?) -> ConsumerStateMachine.NextAction {
        let (action, idle) = machine.withLock { ($0.next(after: handled), $0.takeIdleWaitersIfIdle()) }
        if case .message(_, _, wakeFetcher: true) = action { fetcherGate.signal() }
        for waiter in idle { waiter.resume() }
        return action
    }

    /// The next message after `handled`, or `nil` once the messages ended after shutdown.
    /// - Parameter onWait: Called before the reader waits (the consumer starts its fetcher then).
    /// - Throws: The consumer's failure, or ``KafkaError/Code/cancelled`` when the waiting task is cancelled.
    nonisolated(nonsending) func next(after handled: ConsumerPosition?, onWait: () -> Void) async throws -> (KafkaConsumerMessage, ConsumerPosition)? {
        var handled = handled
        while true {
            switch take(after: handled) {
            case .message(let message, let position, _):
                return (message, position)
            case .end(let error):
                if let error { throw error }
                return nil
            case .wait:
                handled = nil
                onWait()
                try await waitForMessages()
            }
        }
    }

    /// Up to `max` messages at once after `handled`, or `nil` once the messages ended after shutdown.
    nonisolated(nonsending) func nextBatch(after handled: [ConsumerPosition], max: Int, onWait: () -> Void) async throws -> [ConsumerStateMachine.Entry]? {
        var handled = handled
        while true {
            let (action, idle) = machine.withLock { ($0.nextBatch(after: handled, max: max), $0.takeIdleWaitersIfIdle()) }
            for waiter in idle { waiter.resume() }
            switch action {
            case .messages(let entries, let wakeFetcher):
                if wakeFetcher { fetcherGate.signal() }
                return entries
            case .end(let error):
                if let error { throw error }
                return nil
            case .wait:
                handled = []
                onWait()
                try await waitForMessages()
            }
        }
    }

    /// Parks the reader until a message arrives or the messages end.
    /// - Throws: ``KafkaError/Code/cancelled`` when the task is cancelled.
    nonisolated(nonsending) func waitForMessages() async throws {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Checked under the lock: a cancellation either comes first (no parking) or finds it parked.
                if !machine.withLock({ Task.isCancelled ? false : $0.parkReader(continuation) }) { continuation.resume() }
            }
        } onCancel: {
            machine.withLock { $0.cancelReaderWait() }?.resume()
        }
        if Task.isCancelled { throw KafkaError.cancelledWait }
    }

    /// The reader is gone without asking for more: what it held is not handled.
    func readerGone() {
        for waiter in machine.withLock({ $0.readerGone() }) { waiter.resume() }
    }

    // MARK: - Shutdown

    /// Ends the messages: the reader gets `nil` (or `error`) once it asks again.
    func endMessages(_ ending: ConsumerStateMachine.Ending, deliveringBuffered: Bool = false) {
        let action = machine.withLock { $0.endMessages(ending, deliveringBuffered: deliveringBuffered) }
        action.resumeReader?.resume()
        if action.wakeFetcher { fetcherGate.signal() }
    }

    /// Returns once the reader holds no message, or after `timeout`.
    func waitUntilReaderIdle(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    if !self.machine.withLock({ $0.waitUntilReaderIdle(continuation) }) { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // The sleeping child ends on cancellation; release a waiter still parked.
            for waiter in self.machine.withLock({ $0.takeIdleWaiters() }) { waiter.resume() }
        }
    }

    /// Stops the fetcher: returns once its loop has ended (at once when it never started, and never will now).
    /// - Parameter wake: Cuts the fetcher's current wait short.
    func stopFetcher(wake: () -> Void) async {
        switch machine.withLock({ $0.stopFetcher() }) {
        case .none, .stopped:
            return
        case .waitForStop:
            fetcherGate.signal()
            wake()
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !machine.withLock({ $0.waitForFetcherStop(continuation) }) { continuation.resume() }
            }
        }
    }

    // MARK: - Fetcher (called on the backend's thread)

    /// Whether the caller must start the fetcher now.
    func startFetcher() -> Bool { machine.withLock { $0.startFetcher() } }

    /// Whether the fetcher's loop must end.
    var fetcherShouldStop: Bool { machine.withLock { $0.fetcherShouldStop } }

    /// How many messages and bytes to fetch at most now.
    var room: (count: Int, bytes: Int) { machine.withLock { $0.room } }

    /// Hands over fetched messages (the array is emptied); blocks (up to `maxWait`) while the buffer is full.
    func fetched(_ messages: inout [ConsumerStateMachine.FetchedMessage], maxWait: Duration = .milliseconds(100)) {
        guard !messages.isEmpty else { return }
        let action = machine.withLock { $0.fetched(&messages) }
        action.resumeReader?.resume()
        if action.waitForRoom { waitForRoom(maxWait) }
    }

    /// Blocks the fetcher until the reader has made room, the consumer stops, or `maxWait` passed.
    func waitForRoom(_ maxWait: Duration) {
        _ = fetcherGate.wait(timeout: .now() + .milliseconds(Int(maxWait.milliseconds)))
        machine.withLock { $0.fetcherWoke() }
    }

    /// The fetcher's loop ended.
    func fetcherStopped() {
        let (waiters, unserved) = machine.withLock { $0.fetcherStopped() }
        for request in unserved { request.fail(KafkaError.shutDown("The consumer")) }
        for waiter in waiters { waiter.resume() }
    }

    /// Has the fetcher carry out `request` between two fetches. Calls `start` when the fetcher must be started
    /// for it, and `wake` to cut its current wait short.
    func request(_ request: ConsumerStateMachine.FetcherRequest, start: () -> Void, wake: () -> Void) {
        guard let action = machine.withLock({ $0.request(request) }) else {
            return request.fail(KafkaError.shutDown("The consumer"))
        }
        if action.startFetcher { start() }
        if action.wake {
            fetcherGate.signal()
            wake()
        }
    }

    /// The requests for the fetcher, for it to carry out now.
    func takeFetcherRequests() -> [ConsumerStateMachine.FetcherRequest] {
        machine.withLock { $0.hasFetcherRequests ? $0.takeFetcherRequests() : [] }
    }

    /// Stored offsets not yet taken, for the backend to store or commit.
    func takeStoredOffsets() -> [KafkaTopicPartitionOffset] {
        machine.withLock { $0.hasStoredOffsets ? $0.takeStoredOffsets() : [] }
    }

    /// The consumer got these partitions; reports the event.
    func assigned(_ partitions: [KafkaTopicPartition]) {
        machine.withLock { $0.assigned(partitions) }
        if !partitions.isEmpty { emit(.partitionsAssigned(partitions)) }
    }

    /// The consumer lost these partitions (`lost`: without the chance to commit); returns the offsets stored for
    /// them to commit before they go, and reports the event.
    func revoked(_ partitions: [KafkaTopicPartition], lost: Bool) -> [KafkaTopicPartitionOffset] {
        let pending = machine.withLock { $0.revoked(partitions, lost: lost) }
        if !partitions.isEmpty { emit(lost ? .partitionsLost(partitions) : .partitionsRevoked(partitions)) }
        return pending
    }

    // MARK: - Subscription

    /// The topics subscribed to now (`nil` for a consumer of given partitions).
    var subscription: [String]? { machine.withLock { $0.subscription } }

    /// Changes the subscription (``ConsumerStateMachine/subscribe(_:)``); the backend calls it where its changes are
    /// ordered, just before it tells librdkafka or the group, and wakes the fetcher when partitions must be read
    /// again from where their dropped messages began.
    /// - Parameter wake: Cuts the fetcher's current wait short.
    /// - Returns: The subscription before the change.
    /// - Throws: as ``ConsumerStateMachine/subscribe(_:)``.
    @discardableResult
    func subscribe(_ topics: [String], wake: () -> Void) throws -> [String] {
        let change = try machine.withLock { try $0.subscribe(topics) }
        if change.wakeFetcher {
            fetcherGate.signal()
            wake()
        }
        return change.previous
    }

    /// The consumer cannot go on: the messages end with `error`.
    func fail(_ error: KafkaError, deliveringBuffered: Bool) {
        endMessages(.failure(error), deliveringBuffered: deliveringBuffered)
    }
}
