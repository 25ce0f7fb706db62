import Logging
import Synchronization
import Testing
@testable import TracedKafka

/// The producer's state machine under its lock, with real tasks waiting on it: no broker, no file queue.
@Suite("The producer's core: waiting for room, closing, races", .timeLimit(.minutes(1)))
struct ProducerCoreTests {
    static func runningCore(transactional: Bool = false) -> ProducerCore {
        let core = ProducerCore(isTransactional: transactional)
        _ = try? core.withLifecycle { try $0.run() }
        return core
    }

    /// Returns once `condition` holds of the machine (no sleep decides it).
    static func until(_ core: ProducerCore, _ condition: (borrowing ProducerStateMachine) -> Bool) async {
        while !core.machine.withLock({ condition($0) }) { await Task.yield() }
    }

    /// A task waiting for room in `core`, returned once it is parked.
    static func parkedSender(_ core: ProducerCore) async -> Task<Void, Never> {
        let generation = core.roomGeneration
        let waiting = Task { await core.waitForRoom(after: generation) }
        await until(core) { $0.roomWaiterCount == 1 }
        return waiting
    }

    /// A running core in which a sender was parked waiting for room, then let go by `release` (given the core and
    /// the sender's task), returned once the sender's task has ended: a sender `release` does not free hangs until
    /// the suite's time limit.
    static func releasedParkedSender(_ release: (ProducerCore, Task<Void, Never>) -> Void) async -> ProducerCore {
        let core = runningCore()
        let waiting = await parkedSender(core)
        release(core, waiting)
        await waiting.value
        return core
    }

    /// How many senders are waiting for room in `core`.
    static func waiters(_ core: ProducerCore) -> Int { core.machine.withLock { $0.roomWaiterCount } }

    @Test("A sender waiting for room resumes when the backend makes room")
    func roomMadeResumes() async {
        let core = await Self.releasedParkedSender { core, _ in core.roomMade() }
        #expect(Self.waiters(core) == 0)
    }

    @Test("A sender does not wait when room was made since it looked")
    func roomMadeBeforeWaiting() async {
        let core = Self.runningCore()
        let generation = core.roomGeneration
        core.roomMade()
        await core.waitForRoom(after: generation)
        #expect(Self.waiters(core) == 0)
    }

    @Test("A sender cancelled while it waits for room stops waiting at once; one cancelled before never waits")
    func cancelledRoomWait() async {
        let core = await Self.releasedParkedSender { _, waiting in waiting.cancel() }
        #expect(Self.waiters(core) == 0)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await core.waitForRoom(after: core.roomGeneration)
        }
        await early.value
        #expect(Self.waiters(core) == 0)
    }

    @Test("Close resumes the senders waiting for room, waits for the call in flight before it closes the backend, and a second close waits for it")
    func closeDrainsCalls() async throws {
        let core = Self.runningCore()
        _ = try core.admit(transaction: nil)
        let waiting = await Self.parkedSender(core)
        _ = core.withLifecycle { $0.triggerShutdown() }
        let closedBackend = Shared(0)
        let closing = Task {
            await core.close { abort in
                #expect(!abort)
                closedBackend.withLock { $0 += 1 }
            }
        }
        await waiting.value
        await Self.until(core) { $0.backend == .draining }
        #expect(closedBackend.withLock { $0 } == 0, "a call is still in flight")
        // A second close while the first waits returns only once the backend is closed.
        let second = Task {
            await core.close { _ in Issue.record("closed twice") }
            #expect(closedBackend.withLock { $0 } == 1, "the second close returned before the backend was closed")
        }
        await Self.until(core) { $0.closeWaiterCount == 1 }
        core.callEnded()
        await closing.value
        await second.value
        #expect(closedBackend.withLock { $0 } == 1)
        await core.close { _ in Issue.record("closed twice") }
    }

    @Test("Sends racing close from many tasks: the backend closes with no call in flight, later ones fail with shutDown")
    func sendsRacingClose() async throws {
        let core = Self.runningCore()
        let inFlightAtClose = Shared(-1)
        let admittedSoFar = Shared(0)
        let (admitted, refused) = await withTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var admitted = 0, refused = 0
                    for _ in 0..<2_000 {
                        do {
                            _ = try core.admit(transaction: nil)
                            admitted += 1
                            admittedSoFar.withLock { $0 += 1 }
                            // The call stays in flight across a suspension, as a backend call on another thread would.
                            await Task.yield()
                            core.callEnded()
                        } catch {
                            #expect((error as? KafkaError)?.code == .shutDown)
                            refused += 1
                        }
                    }
                    return (admitted, refused)
                }
            }
            group.addTask {
                while admittedSoFar.withLock({ $0 }) < 2_000 { await Task.yield() }
                _ = core.withLifecycle { $0.triggerShutdown() }
                await core.close { _ in inFlightAtClose.withLock { $0 = core.machine.withLock { $0.callsInFlight } } }
                return (0, 0)
            }
            return await group.reduce(into: (0, 0)) { $0.0 += $1.0; $0.1 += $1.1 }
        }
        #expect(inFlightAtClose.withLock { $0 } == 0)
        #expect(admitted + refused == 16_000)
        #expect(admitted >= 2_000 && refused > 0)
    }

    @Test("Senders waiting for room racing room made and cancellation: none is left waiting")
    func roomWaitersRacing() async {
        let core = Self.runningCore()
        let returned = Shared(0)
        let waiters = (0..<500).map { _ in
            let generation = core.roomGeneration
            return Task {
                await core.waitForRoom(after: generation)
                returned.withLock { $0 += 1 }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for (index, waiter) in waiters.enumerated() where index.isMultiple(of: 3) { group.addTask { waiter.cancel() } }
            group.addTask {
                // Room keeps being made until every waiter has returned.
                while returned.withLock({ $0 }) < waiters.count {
                    core.roomMade()
                    await Task.yield()
                }
            }
        }
        #expect(returned.withLock { $0 } == 500)
        #expect(Self.waiters(core) == 0)
    }

    // MARK: - Fatal errors

    static let fenced = KafkaError(code: .fatal, reason: "fenced")
    static let logger = Logger(label: "ProducerCoreTests")

    /// A core whose attached shutdown closes the backend through it, counting the closes.
    static func coreCountingCloses() -> (ProducerCore, Shared<Int>) {
        let core = ProducerCore(isTransactional: false)
        let closes = Shared(0)
        core.attachShutDown { [weak core] in await core?.close { _ in closes.withLock { $0 += 1 } } }
        return (core, closes)
    }

    @Test("A fatal error before run() closes the backend once, in the background; later calls and run() find it")
    func fatalBeforeRun() async throws {
        let (core, closes) = Self.coreCountingCloses()
        #expect(core.fail(Self.fenced, logger: Self.logger))
        #expect(!core.fail(KafkaError(code: .fatal, reason: "again"), logger: Self.logger), "only the first fatal error counts")
        await Self.until(core) { $0.backend == .closed }
        #expect(closes.withLock { $0 } == 1)
        #expect((#expect(throws: KafkaError.self) { try core.admit(transaction: nil) })?.reason == "fenced")
        // A run() called afterwards shuts down at once, without closing again.
        try await core.run(start: { Issue.record("started after a fatal error") }, trigger: {}) {
            await core.close { _ in closes.withLock { $0 += 1 } }
        }
        #expect(closes.withLock { $0 } == 1)
    }

    @Test("A fatal error that comes before the shutdown is attached closes the backend once it is")
    func fatalBeforeAttach() async {
        let core = ProducerCore(isTransactional: false)
        #expect(core.fail(Self.fenced, logger: Self.logger))
        let closes = Shared(0)
        core.attachShutDown { [weak core] in await core?.close { _ in closes.withLock { $0 += 1 } } }
        await Self.until(core) { $0.backend == .closed }
        #expect(closes.withLock { $0 } == 1)
    }

    @Test("A fatal error racing run(): the backend closes exactly once, whichever comes first")
    func fatalRacingRun() async throws {
        for _ in 0..<200 {
            let (core, closes) = Self.coreCountingCloses()
            let running = Task {
                try await core.run(start: {}, trigger: {}) { await core.close { _ in closes.withLock { $0 += 1 } } }
            }
            core.fail(Self.fenced, logger: Self.logger)
            try await running.value
            await Self.until(core) { $0.backend == .closed }
            #expect(closes.withLock { $0 } == 1)
        }
    }

    @Test("A producer hit by a fatal error before run() frees its backend and ends its events; sends and run() throw the error")
    func producerFatalBeforeRun() async throws {
        // The file queue (librdkafka's threads would keep this suite from running under ThreadSanitizer).
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(
            configuration: KafkaProducerConfiguration(backend: TestBackend.fileQueue.backend)
        )
        #expect(producer.core.fail(Self.fenced, logger: Self.logger))
        for await _ in events {}  // the events end once the producer has shut down
        #expect(producer.core.machine.withLock { $0.backend } == .closed)
        let send = await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerRecord(topic: "t", value: "v")) }
        #expect(send?.reason == "fenced")
        let run = await #expect(throws: KafkaError.self) { try await producer.run() }
        #expect(run?.reason == "fenced")
    }

    @Test("A sender waiting for the events' reader resumes once the reader makes room; a cancelled one stops waiting")
    func eventRoom() async throws {
        // The file queue: no cluster errors come between the events the test adds.
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(
            configuration: KafkaProducerConfiguration(backend: TestBackend.fileQueue.backend),
            maxBufferedEvents: 2
        )
        let event = KafkaProducerEvent.error(KafkaError(code: .rdKafka, reason: "an error"))
        var reader = events.makeAsyncIterator()
        producer.events?.yield(event)
        _ = await reader.next()  // a reader has started: from now on the stream drops nothing
        producer.events?.yield(event)
        #expect(!producer.eventsAreFull)
        producer.events?.yield(event)
        #expect(producer.eventsAreFull)
        let waiting = Task { try await producer.waitForEventRoom() }
        await Self.until(producer.core) { $0.roomWaiterCount == 1 }
        _ = await reader.next()
        try await waiting.value
        #expect(!producer.eventsAreFull)

        producer.events?.yield(event)
        let cancelled = Task { try await producer.waitForEventRoom() }
        await Self.until(producer.core) { $0.roomWaiterCount == 1 }
        cancelled.cancel()
        let error = await #expect(throws: KafkaError.self) { try await cancelled.value }
        #expect(error?.code == .cancelled)
        #expect(Self.waiters(producer.core) == 0)
    }
}
