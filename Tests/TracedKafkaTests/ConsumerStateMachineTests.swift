import Synchronization
import Testing
@testable import TracedKafka
import TracedKafkaTesting

/// The consumer's state machine alone: no broker, no file queue, no threads but the test's.
@Suite("The consumer's state machine", .timeLimit(.minutes(1)))
struct ConsumerStateMachineTests {
    static let p0 = KafkaTopicPartition(topic: "orders", partition: 0)
    static let p1 = KafkaTopicPartition(topic: "orders", partition: 1)

    static func message(_ partition: KafkaTopicPartition, _ offset: Int64, bytes: Int = 10) -> ConsumerStateMachine.FetchedMessage {
        ConsumerStateMachine.FetchedMessage(
            message: KafkaConsumerMessage(
                topic: partition.topic, partition: partition.partition, offset: offset,
                key: nil, value: [UInt8](repeating: 1, count: bytes), headers: [], timestamp: nil
            ),
            size: bytes
        )
    }

    /// A machine that has started `run()`, registered its reader, owns `partitions` and was handed `offsets` of p0.
    static func running(
        _ mode: ConsumerStateMachine.StoreMode = .whenHandled,
        maxMessages: Int = 100,
        owning partitions: [KafkaTopicPartition] = [p0],
        fetched offsets: [Int64] = []
    ) -> ConsumerStateMachine {
        var machine = ConsumerStateMachine(storeMode: mode, maxMessages: maxMessages, maxBytes: 1 << 20)
        _ = try? machine.lifecycle.run()
        let registered = machine.registerReader(), started = machine.startFetcher()
        #expect(registered && started)
        machine.assigned(partitions)
        var batch = offsets.map { message(p0, $0) }
        _ = machine.fetched(&batch)
        return machine
    }

    /// A core that has started `run()`, registered its reader, started its fetcher and owns p0.
    static func runningCore() -> ConsumerCore {
        let core = ConsumerCore(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20, events: nil)
        _ = try? core.withLifecycle { try $0.run() }
        let registered = core.machine.withLock { $0.registerReader() }
        #expect(registered && core.startFetcher())
        core.assigned([Self.p0])
        return core
    }

    /// Returns, yielding, once `condition` holds (`true`) or `otherwise` holds (`false`): the test goes on from a
    /// state it has seen, never after a sleep.
    static func until(_ condition: () -> Bool, otherwise: () -> Bool) async -> Bool {
        while true {
            if condition() { return true }
            if otherwise() { return false }
            await Task.yield()
        }
    }

    /// Whether shutdown waits in the machine for the reader: its waiters are taken and put back under one lock, so
    /// the machine is left as it was.
    static func shutdownIsWaiting(_ core: ConsumerCore) -> Bool {
        core.machine.withLock { machine in
            let waiters = machine.takeIdleWaiters()
            for waiter in waiters where !machine.waitUntilReaderIdle(waiter) { waiter.resume() }
            return !waiters.isEmpty
        }
    }

    /// Whether the reader is parked in the machine: taken and put back under one lock (nothing changed since it
    /// parked, so it parks again; if not, the machine's state is inconsistent, and it is left alone rather than
    /// resumed a second time).
    static func readerIsParked(_ core: ConsumerCore) -> Bool {
        core.machine.withLock { machine in
            guard let reader = machine.cancelReaderWait() else { return false }
            if !machine.parkReader(reader) { Issue.record("a parked reader could not park again") }
            return true
        }
    }

    static func take(_ machine: inout ConsumerStateMachine, after handled: ConsumerPosition?) -> (KafkaConsumerMessage, ConsumerPosition)? {
        guard case .message(let message, let position, _) = machine.next(after: handled) else { return nil }
        return (message, position)
    }

    @Test("A handled message's offset is stored once the reader asks for the next one, and taken once")
    func storesWhenHandled() throws {
        var machine = Self.running(fetched: [0, 1, 2])
        let (first, position) = try #require(Self.take(&machine, after: nil))
        #expect(first.offset == 0)
        let before = machine.takeStoredOffsets()
        #expect(before.isEmpty, "nothing is handled yet")
        _ = Self.take(&machine, after: position)
        let stored = machine.takeStoredOffsets(), again = machine.takeStoredOffsets()
        #expect(stored == [KafkaTopicPartitionOffset(topic: "orders", partition: 0, offset: 1)])
        #expect(again.isEmpty, "taken once")
    }

    @Test("Automatic mode stores at hand-out, manual never")
    func storeModes() throws {
        var automatic = Self.running(.whenHandedOut, fetched: [0, 1])
        _ = Self.take(&automatic, after: nil)
        let automaticStored = automatic.takeStoredOffsets().map(\.offset)
        #expect(automaticStored == [1])
        var manual = Self.running(.never, fetched: [0, 1])
        let (_, position) = try #require(Self.take(&manual, after: nil))
        _ = Self.take(&manual, after: position)
        let manualStored = manual.takeStoredOffsets()
        #expect(manualStored.isEmpty)
    }

    @Test("A revoke while a handler runs: its late 'handled' stores nothing, buffered messages are dropped")
    func revokeWhileHandling() throws {
        var machine = Self.running(fetched: [0, 1, 2])
        let (_, position) = try #require(Self.take(&machine, after: nil))
        let pending = machine.revoked([Self.p0], lost: false)
        #expect(pending.isEmpty, "nothing was handled before the revoke")
        guard case .wait = machine.next(after: position) else {
            Issue.record("the buffered messages of a revoked partition were handed out")
            return
        }
        let stored = machine.takeStoredOffsets()
        #expect(stored.isEmpty, "a message of a partition let go is not committed by this member")
        // Assigned again (a new generation): a message fetched now is delivered and its offset stored.
        machine.assigned([Self.p0])
        var batch = [Self.message(Self.p0, 1)]
        _ = machine.fetched(&batch)
        let (again, second) = try #require(Self.take(&machine, after: nil))
        #expect(again.offset == 1)
        _ = machine.next(after: second)
        let storedAgain = machine.takeStoredOffsets().map(\.offset)
        #expect(storedAgain == [2])
    }

    @Test("A revoke hands back what was handled of the partition and not yet taken, to commit before it goes; a loss does not")
    func revokeHandsBackStored() throws {
        var machine = Self.running(fetched: [0, 1])
        let (_, position) = try #require(Self.take(&machine, after: nil))
        _ = Self.take(&machine, after: position)
        let handedBack = machine.revoked([Self.p0], lost: false).map(\.offset)
        #expect(handedBack == [1])
        var lost = Self.running(fetched: [0, 1])
        let (_, lostPosition) = try #require(Self.take(&lost, after: nil))
        _ = Self.take(&lost, after: lostPosition)
        let lostBack = lost.revoked([Self.p0], lost: true), lostStored = lost.takeStoredOffsets()
        #expect(lostBack.isEmpty && lostStored.isEmpty)
    }

    @Test("A partition revoked and assigned again stores what is handled anew, also below what was stored before (the commit at the revoke may have been refused)")
    func reassignedStoresAnew() throws {
        var machine = Self.running(fetched: [0, 1, 2, 3])
        var handled: ConsumerPosition?
        for _ in 0..<4 { handled = try #require(Self.take(&machine, after: handled)).1 }
        _ = machine.next(after: handled)
        let pending = machine.revoked([Self.p0], lost: false).map(\.offset)
        #expect(pending == [4])
        // Assigned again from the committed offset 2 (the broker refused the commit of 4).
        machine.assigned([Self.p0])
        var again = [Self.message(Self.p0, 2), Self.message(Self.p0, 3)]
        _ = machine.fetched(&again)
        let (_, first) = try #require(Self.take(&machine, after: nil))
        _ = machine.next(after: first)
        let stored = machine.takeStoredOffsets().map(\.offset)
        #expect(stored == [3])
    }

    @Test("A message out during shutdown: shutdown waits for it; the reader's next request frees the waiter")
    func messageOutDuringShutdown() async throws {
        let core = Self.runningCore()
        var batch = [Self.message(Self.p0, 0), Self.message(Self.p0, 1)]
        core.fetched(&batch)
        guard case .message(_, let position, _) = core.take(after: nil) else {
            Issue.record("no message")
            return
        }
        // Shutdown begins while the message is out with the handler.
        _ = core.withLifecycle { $0.triggerShutdown() }
        let done = Shared(false)
        async let waited: Void = {
            await core.waitUntilReaderIdle(timeout: .seconds(3600))
            done.withLock { $0 = true }
        }()
        // Shutdown's waiter is parked in the machine instead of resumed at once.
        let parked = await Self.until({ Self.shutdownIsWaiting(core) }, otherwise: { done.withLock { $0 } })
        #expect(parked, "shutdown did not wait for the handler")
        // The handler returns: its message is handled, nothing more is handed out (m1 stays unhandled).
        guard case .end(nil) = core.take(after: position) else {
            Issue.record("a message was handed out after shutdown began")
            return
        }
        // That request resumed the waiter: none is left parked (one that was is released here, so the test ends).
        let left = core.machine.withLock { $0.takeIdleWaiters() }
        #expect(left.isEmpty, "the handler's next request did not free shutdown")
        for waiter in left { waiter.resume() }
        await waited
        #expect(core.takeStoredOffsets().map(\.offset) == [1])
    }

    @Test("Cancellation while waiting resumes the reader with KafkaError.cancelled; a later message finds no stale waiter")
    func cancelWhileWaiting() async throws {
        let core = Self.runningCore()
        let finished = Shared(false)
        let waiting = Task {
            defer { finished.withLock { $0 = true } }
            return try await core.next(after: nil, onWait: {})
        }
        // Cancelled once parked: the cancellation handler, not the check before parking, must resume it.
        let parked = await Self.until({ Self.readerIsParked(core) }, otherwise: { finished.withLock { $0 } })
        #expect(parked, "the reader never parked")
        waiting.cancel()
        let error = await #expect(throws: KafkaError.self) { _ = try await waiting.value }
        #expect(error?.code == .cancelled)
        try #require(!Self.readerIsParked(core), "the cancelled reader's continuation is still parked")
        var batch = [Self.message(Self.p0, 0)]
        core.fetched(&batch)
        let next = try await core.next(after: nil, onWait: {})
        #expect(next?.0.offset == 0)
    }

    @Test("Close while fetching starts: the fetcher starts at most once, never after close, and close waits for a started one")
    func closeWhileStarting() async throws {
        var notStarted = ConsumerStateMachine(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20)
        guard case .none = notStarted.stopFetcher() else { Issue.record("a never-started fetcher must need no wait"); return }
        let startedAfterClose = notStarted.startFetcher(), shouldStop = notStarted.fetcherShouldStop
        #expect(!startedAfterClose, "a fetcher starting after close began")
        #expect(shouldStop)

        // A started fetcher: close is told to wait, and its waiter is handed back only when the fetcher says it stopped.
        var machine = ConsumerStateMachine(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20)
        let started = machine.startFetcher(), startedAgain = machine.startFetcher()
        #expect(started)
        #expect(!startedAgain, "started twice")
        guard case .waitForStop = machine.stopFetcher() else { Issue.record("close did not wait for the running fetcher"); return }
        let toldToStop = machine.fetcherShouldStop
        #expect(toldToStop)
        await withCheckedContinuation { (closing: CheckedContinuation<Void, Never>) in
            let parked = machine.waitForFetcherStop(closing)
            let (waiters, _) = machine.fetcherStopped()
            #expect(parked, "close's waiter was resumed before the fetcher stopped")
            #expect(waiters.count == 1, "the fetcher's stop did not hand back close's waiter")
            if waiters.isEmpty { closing.resume() } else { for waiter in waiters { waiter.resume() } }
        }

        // The core does what the machine says: close returns once a fetcher that saw it must stop says it stopped.
        let core = ConsumerCore(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20, events: nil)
        #expect(core.startFetcher())
        async let closing: Void = core.stopFetcher(wake: {})
        _ = await Self.until({ core.fetcherShouldStop }, otherwise: { false })
        core.fetcherStopped()
        await closing
    }

    @Test("A request for the fetcher after it stopped fails with shutDown instead of waiting forever")
    func requestAfterStop() async throws {
        let core = ConsumerCore(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20, events: nil)
        await core.stopFetcher(wake: {})
        let error = await #expect(throws: KafkaError.self) {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                core.request(.seek(Self.p0, .beginning, continuation), start: { Issue.record("started after stop") }, wake: {})
            }
        }
        #expect(error?.code == .shutDown)
    }

    @Test("The buffer holds the fetcher at its bound and wakes it only once drained to half")
    func bufferBounds() throws {
        var machine = Self.running(maxMessages: 4)
        var batch = (0..<4).map { Self.message(Self.p0, Int64($0)) }
        let action = machine.fetched(&batch)
        let room = machine.room
        #expect(action.waitForRoom)
        #expect(room == (0, 0))
        guard case .message(_, let first, wakeFetcher: false) = machine.next(after: nil) else { Issue.record("woke at 3 of 4"); return }
        guard case .message(_, _, wakeFetcher: true) = machine.next(after: first) else { Issue.record("not woken at 2 of 4"); return }
    }

    @Test("Seek: only an owned partition; its buffered messages and the message out count no more; the target is the position to commit")
    func seek() throws {
        var machine = Self.running(owning: [Self.p0], fetched: [10, 11, 12])
        let (_, position) = try #require(Self.take(&machine, after: nil))
        var refused: KafkaError?
        do { try machine.seek(Self.p1, to: 0) } catch { refused = error as? KafkaError }
        #expect(refused?.code == .notAssigned)
        try machine.seek(Self.p0, to: 3)
        guard case .wait = machine.next(after: position) else { Issue.record("messages from before the seek"); return }
        let stored = machine.takeStoredOffsets().map(\.offset), position3 = machine.position(of: Self.p0)
        #expect(stored == [3], "the seek's target, not the handled message before it")
        #expect(position3 == 3)
    }

    @Test("Pause and resume name owned partitions only")
    func pauseNamesOwned() throws {
        var machine = Self.running(owning: [Self.p0])
        var refused: KafkaError?
        do { try machine.setPaused([Self.p0, Self.p1], true) } catch { refused = error as? KafkaError }
        let pausedAfterRefusal = machine.isPaused(Self.p0)
        #expect(refused?.code == .notAssigned)
        #expect(!pausedAfterRefusal, "nothing changes when one partition is not owned")
        try machine.setPaused([Self.p0], true)
        let paused = machine.isPaused(Self.p0)
        #expect(paused)
    }

    @Test("A failure with delivery of what is buffered hands those out first, then the error")
    func failureAfterBuffered() throws {
        var machine = Self.running(fetched: [0, 1])
        _ = machine.endMessages(.failure(KafkaError(code: .corruptRecord, reason: "damaged")), deliveringBuffered: true)
        let (_, first) = try #require(Self.take(&machine, after: nil))
        let (_, second) = try #require(Self.take(&machine, after: first))
        guard case .end(let error?) = machine.next(after: second) else { Issue.record("no error after the buffered messages"); return }
        #expect(error.code == .corruptRecord)
    }
}

// MARK: - Subscription

extension ConsumerStateMachineTests {
    static let q0 = KafkaTopicPartition(topic: "payments", partition: 0)

    /// A running group member subscribed to orders and payments, owning p0 and q0, with `orders` of p0 and
    /// `payments` of q0 fetched (p0's first).
    static func subscribed(orders: [Int64], payments: [Int64]) -> ConsumerStateMachine {
        var machine = ConsumerStateMachine(storeMode: .whenHandled, maxMessages: 100, maxBytes: 1 << 20, subscription: ["orders", "payments"])
        _ = try? machine.lifecycle.run()
        let registered = machine.registerReader(), started = machine.startFetcher()
        #expect(registered && started)
        machine.assigned([p0, q0])
        var batch = orders.map { message(p0, $0) } + payments.map { message(q0, $0) }
        _ = machine.fetched(&batch)
        return machine
    }

    @Test("Subscribing away from a topic: its buffered and later fetched messages are never handed out; the one out counts when handled and is committed when the partition goes")
    func subscribeAwayDropsTopic() throws {
        var machine = Self.subscribed(orders: [0, 1, 2], payments: [0, 1])
        let (first, out) = try #require(Self.take(&machine, after: nil))
        #expect(first.topic == "orders" && first.offset == 0)
        let change = try machine.subscribe(["payments"])
        #expect(change.previous == ["orders", "payments"])
        #expect(machine.subscription == ["payments"])
        // The handler finishes orders@0: the next message is of payments, not orders@1.
        let (next, nextPosition) = try #require(Self.take(&machine, after: out))
        #expect(next.topic == "payments" && next.offset == 0)
        var later = [Self.message(Self.p0, 3), Self.message(Self.q0, 2)]
        _ = machine.fetched(&later)
        var handedOut: [String] = []
        var handled = nextPosition
        while case .message(let message, let position, _) = machine.next(after: handled) {
            handedOut.append("\(message.topic)@\(message.offset)")
            handled = position
        }
        #expect(handedOut == ["payments@1", "payments@2"])
        // The group has yet to take orders[0] back: still owned, leaving; what was handled of it goes with it.
        let owned = machine.owns(Self.p0), leaving = machine.isLeaving(Self.p0)
        #expect(owned && leaving)
        let pending = machine.revoked([Self.p0], lost: false)
        #expect(pending == [KafkaTopicPartitionOffset(topic: "orders", partition: 0, offset: 1)])
    }

    @Test("A topic subscribed again before its partition went is handed out again from the first message dropped, once the fetcher went back there")
    func subscribeAgainRewinds() throws {
        var machine = Self.subscribed(orders: [0, 1, 2], payments: [])
        let (_, out) = try #require(Self.take(&machine, after: nil))
        _ = try machine.subscribe(["payments"])
        guard case .wait = machine.next(after: out) else { Issue.record("a message of an unsubscribed topic was handed out"); return }
        let change = try machine.subscribe(["payments", "orders"])
        #expect(change.wakeFetcher)
        let requests = machine.takeFetcherRequests()
        guard requests.count == 1, case .rewind(let partition, let offset) = requests[0] else {
            Issue.record("expected one rewind request, got \(requests)")
            return
        }
        #expect(partition == Self.p0 && offset == 1, "back to orders@1, the first message dropped")
        // What the fetcher read before going back is still dropped.
        var stale = [Self.message(Self.p0, 3)]
        _ = machine.fetched(&stale)
        let target = machine.rewindTarget(of: Self.p0)
        #expect(target == 1)
        guard case .wait = machine.next(after: nil) else { Issue.record("a message from before the rewind was handed out"); return }
        machine.rewound(Self.p0, to: 1)
        var again = [Self.message(Self.p0, 1), Self.message(Self.p0, 2)]
        _ = machine.fetched(&again)
        let (resumed, _) = try #require(Self.take(&machine, after: nil))
        #expect(resumed.offset == 1)
    }

    @Test("A leaving partition of which nothing was dropped is handed out from again at once when its topic is subscribed again")
    func subscribeAgainWithoutDrops() throws {
        var machine = Self.subscribed(orders: [], payments: [])
        _ = try machine.subscribe(["payments"])
        let change = try machine.subscribe(["orders", "payments"])
        let leaving = machine.isLeaving(Self.p0), requests = machine.takeFetcherRequests()
        #expect(!change.wakeFetcher && requests.isEmpty && !leaving)
        var batch = [Self.message(Self.p0, 0)]
        _ = machine.fetched(&batch)
        let (message, _) = try #require(Self.take(&machine, after: nil))
        #expect(message.offset == 0)
    }

    @Test("A partition the group still assigns of a topic no longer subscribed is not handed out")
    func assignedAfterSubscribeAway() throws {
        var machine = Self.subscribed(orders: [], payments: [])
        _ = machine.revoked([Self.p0, Self.q0], lost: false)
        _ = try machine.subscribe(["payments"])
        machine.assigned([Self.p0, Self.q0])  // dealt from the old subscription
        var batch = [Self.message(Self.p0, 0), Self.message(Self.q0, 0)]
        _ = machine.fetched(&batch)
        let (message, position) = try #require(Self.take(&machine, after: nil))
        #expect(message.topic == "payments")
        guard case .wait = machine.next(after: position) else { Issue.record("orders was handed out"); return }
    }

    @Test("The subscription: duplicates dropped in the order first named; none for given partitions (noGroup); refused once shutdown began")
    func subscriptionMisuse() throws {
        var machine = ConsumerStateMachine(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20, subscription: ["a", "b", "a"])
        #expect(machine.subscription == ["a", "b"])
        _ = try machine.subscribe(["c", "a", "c"])
        #expect(machine.subscription == ["c", "a"])
        var given = ConsumerStateMachine(storeMode: .whenHandled, maxMessages: 10, maxBytes: 1 << 20)
        var refused: KafkaError?
        do { _ = try given.subscribe(["a"]) } catch { refused = error as? KafkaError }
        #expect(refused?.code == .noGroup)
        _ = machine.lifecycle.triggerShutdown()
        var late: KafkaError?
        do { _ = try machine.subscribe(["a"]) } catch { late = error as? KafkaError }
        #expect(late?.code == .shutDown)
        #expect(machine.subscription == ["c", "a"])
    }
}
