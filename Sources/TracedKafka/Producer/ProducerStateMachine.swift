/// The whole state of one producer, under one lock (``ProducerCore``): its lifecycle, whether it takes records, the
/// backend calls in flight that closing waits for, the senders waiting for room in the backend's queue, its
/// transactions and a fatal error.
///
/// A value type whose mutating methods decide and return what must happen; the caller does it outside the lock
/// (resuming continuations, calling the backend). The backends are I/O: they take records, report each record's
/// outcome to its ``DeliveryTicket`` and report room made in their queue. It is unit-tested without any broker.
///
/// Each continuation it holds is taken out under the lock by exactly one party and resumed once, so they are unsafe
/// continuations: a checked one's size is not known at compile time, which would make every field of this state be
/// found through run-time metadata on each lock.
struct ProducerStateMachine: ~Copyable {
    /// The backend: open; draining (close waits for the calls in flight); closing (the backend's close under way);
    /// closed.
    enum Backend: Equatable {
        case open
        case draining
        case closing
        case closed
    }

    /// One `withTransaction` of a transactional producer, from `begin` to its outcome (kept until the next begins).
    struct Transaction {
        let number: UInt64
        /// How the transaction ended; `nil` while it is open.
        var outcome: TransactionOutcome?
        /// Records the backend took in it.
        var sentCount = 0
        /// Tickets with a recording send span, which end once the outcome is known too.
        var held: [DeliveryTicket] = []
    }

    let isTransactional: Bool
    private(set) var backend = Backend.open
    /// Calls into the backend's queue under way (``admit(transaction:)`` … ``callEnded()``):
    /// the backend is closed only once none is.
    private(set) var callsInFlight = 0
    private var lastMessageID: UInt64 = 0

    /// Bumped whenever the backend may have room again; a sender reads it before it offers a record, so room made
    /// between the offer and its wait is never missed.
    private(set) var roomGeneration: UInt64 = 0

    /// The fatal error that stopped the producer, if any: every later call throws it.
    private(set) var fatal: KafkaError?

    /// `rd_kafka_init_transactions` has succeeded.
    private(set) var transactionsInitialized = false
    /// The last abort did not finish: the next transaction aborts again before it begins.
    private(set) var abortPending = false
    /// A `withTransaction` is under way (one at a time).
    private(set) var transactionRunning = false
    /// The backend may hold an open transaction: `begin` was asked for and neither commit nor abort has finished.
    /// Closing aborts it.
    private(set) var backendTransactionOpen = false
    /// The current transaction, or the last one.
    private(set) var transaction: Transaction?
    private var lastTransactionNumber: UInt64 = 0

    /// `run()` and shutdown, as the consumer has them.
    var lifecycle = ClientLifecycle()
    private var drainWaiter: UnsafeContinuation<Void, Never>?
    /// Closes that came while another was under way, until the backend is closed.
    private var closeWaiters: [UnsafeContinuation<Void, Never>] = []
    private var roomWaiters = CancellableWaiters()
    /// The producer's shutdown, for a fatal error that stops a producer whose `run()` was never called.
    private var shutDownWithoutRun: (@Sendable () async -> Void)?

    init(isTransactional: Bool) {
        self.isTransactional = isTransactional
    }

    // MARK: - Sending

    /// A record is about to be handed to the backend: checks that the producer takes it, gives it its id and counts
    /// the call in flight (end it with ``callEnded()``).
    /// - Parameter transaction: The number of the transaction it is sent in, if any.
    /// - Throws: The fatal error; ``KafkaError/Code/notInTransaction`` for a transactional producer outside an open
    ///   transaction; ``KafkaError/Code/shutDown`` once shutdown has begun.
    mutating func admit(transaction: UInt64?) throws -> KafkaProducerMessageID {
        try beginCall(transaction: transaction)
        lastMessageID += 1
        return KafkaProducerMessageID(rawValue: lastMessageID)
    }

    /// A record admitted before offers itself again after waiting for room: counts the call in flight.
    /// - Throws: as ``admit(transaction:)``.
    mutating func beginCall(transaction: UInt64?) throws {
        try requireRunning()
        if isTransactional {
            guard let transaction else {
                throw KafkaError(
                    code: .notInTransaction,
                    reason: "A transactional producer sends only inside withTransaction, through its KafkaTransaction"
                )
            }
            try requireOpen(transaction)
        }
        callsInFlight += 1
    }

    /// A call into the backend has returned. Returns `true` when it was the last one that closing waited for: then
    /// resume the closing task (``takeDrainWaiter()``).
    mutating func callEnded() -> Bool {
        callsInFlight -= 1
        guard callsInFlight == 0, backend == .draining else { return false }
        backend = .closing
        return true
    }

    /// The closing task parked until the calls in flight ended, once they have.
    mutating func takeDrainWaiter() -> UnsafeContinuation<Void, Never>? {
        defer { drainWaiter = nil }
        return drainWaiter
    }

    /// The backend took a record sent in transaction `number`: the transaction counts it, and holds its ticket (one
    /// with a recording send span) until the outcome is known. Returns the outcome for the ticket to take now when
    /// the transaction has already ended.
    mutating func taken(in number: UInt64, ticket: DeliveryTicket?) -> TransactionOutcome? {
        guard var current = transaction, current.number == number, current.outcome == nil else {
            // The transaction ended while the record was on its way.
            guard ticket != nil else { return nil }
            return transaction?.number == number ? transaction?.outcome : .aborted(Self.endedTransaction)
        }
        current.sentCount += 1
        if let ticket { current.held.append(ticket) }
        transaction = current
        return nil
    }

    private static let endedTransaction = KafkaError(
        code: .notInTransaction,
        reason: "The transaction had ended when the record was handed over"
    )

    // MARK: - Room in the backend's queue

    /// How many senders wait for room.
    var roomWaiterCount: Int { roomWaiters.count }

    /// An id for a sender about to wait for room, so that its cancellation can find it.
    mutating func makeRoomWaiterID() -> UInt64 { roomWaiters.makeID() }

    /// Parks a sender that found the queue full until room may have appeared since it read `generation`.
    /// - Returns: `false` when the sender must not park: room was made since, or the producer is closing.
    mutating func parkForRoom(_ id: UInt64, after generation: UInt64, _ continuation: UnsafeContinuation<Void, Never>) -> Bool {
        guard roomGeneration == generation, backend == .open, lifecycle.acceptsWork else { return false }
        roomWaiters.park(id, continuation)
        return true
    }

    /// The backend may have room again: returns the senders to resume.
    mutating func roomMade() -> [UnsafeContinuation<Void, Never>] {
        roomGeneration &+= 1
        return roomWaiters.takeAll()
    }

    /// A waiting sender's task was cancelled: returns its continuation, unless room was made first.
    mutating func cancelRoomWait(_ id: UInt64) -> UnsafeContinuation<Void, Never>? { roomWaiters.remove(id) }

    // MARK: - Flush and close

    /// Throws the fatal error, or ``KafkaError/Code/shutDown`` once shutdown has begun: no call into the backend
    /// (a send, a flush, a transaction) starts then. Shutdown delivers what is queued itself.
    func requireRunning() throws {
        if let fatal { throw fatal }
        guard lifecycle.acceptsWork, backend == .open else { throw KafkaError.shutDown("The producer") }
    }

    /// What a close does first.
    enum CloseAction {
        /// Resume these senders waiting for room (they find the producer shut down); when `drain`, park with
        /// ``parkDrain(_:)`` until the last call in flight ends. Then close the backend and report ``closed()``.
        case close(resumeRoomWaiters: [UnsafeContinuation<Void, Never>], drain: Bool)
        /// Another close is under way: park with ``parkUntilClosed(_:)``.
        case waitForClose
        /// The backend is closed.
        case none
    }

    /// A close begins (at shutdown, or when the producer is dropped): no call starts any more.
    mutating func beginClose() -> CloseAction {
        switch backend {
        case .open:
            backend = callsInFlight == 0 ? .closing : .draining
            return .close(resumeRoomWaiters: roomWaiters.takeAll(), drain: backend == .draining)
        case .draining, .closing:
            return .waitForClose
        case .closed:
            return .none
        }
    }

    /// Parks a second close until the first has closed the backend. Returns `false` when it already has.
    mutating func parkUntilClosed(_ continuation: UnsafeContinuation<Void, Never>) -> Bool {
        guard backend != .closed else { return false }
        closeWaiters.append(continuation)
        return true
    }

    /// How many closes wait for the one under way.
    var closeWaiterCount: Int { closeWaiters.count }

    /// The backend is closed: returns the other closes to resume.
    mutating func closed() -> [UnsafeContinuation<Void, Never>] {
        backend = .closed
        defer { closeWaiters = [] }
        return closeWaiters
    }

    /// Parks the closing task until the last call in flight ends. Returns `false` when none is left (close now).
    mutating func parkDrain(_ continuation: UnsafeContinuation<Void, Never>) -> Bool {
        guard backend == .draining else { return false }  // the last call ended already
        drainWaiter = continuation
        return true
    }

    // MARK: - Transactions

    /// Throws ``KafkaError/Code/notInTransaction`` unless transaction `number` is open.
    func requireOpen(_ number: UInt64) throws {
        guard let transaction, transaction.number == number, transaction.outcome == nil else {
            throw KafkaError(
                code: .notInTransaction,
                reason: "The transaction has ended; use a KafkaTransaction only inside its withTransaction closure"
            )
        }
    }

    /// A `withTransaction` begins: returns whether the transactional id must be registered first and whether an
    /// unfinished abort must be finished first.
    /// - Throws: The fatal error; ``KafkaError/Code/alreadyRunning`` while another runs; ``KafkaError/Code/shutDown``
    ///   once shutdown has begun.
    mutating func startTransactionRun() throws -> (initialize: Bool, abortFirst: Bool) {
        try requireRunning()
        guard !transactionRunning else {
            throw KafkaError(code: .alreadyRunning, reason: "A transaction of this producer is open; it runs one at a time")
        }
        transactionRunning = true
        return (!transactionsInitialized, abortPending)
    }

    /// The `withTransaction` is over, whatever its outcome.
    mutating func transactionRunEnded() { transactionRunning = false }

    /// The transactional id is registered.
    mutating func transactionsDidInitialize() { transactionsInitialized = true }

    /// `begin` is about to be asked of the backend: from now on closing aborts.
    mutating func willBeginTransaction() { backendTransactionOpen = true }

    /// The backend began a transaction: returns its number.
    mutating func transactionBegan() -> UInt64 {
        lastTransactionNumber += 1
        transaction = Transaction(number: lastTransactionNumber)
        return lastTransactionNumber
    }

    /// The backend committed or aborted (`finished`), or the abort did not finish: then the next transaction
    /// aborts first.
    mutating func transactionCallEnded(finished: Bool) {
        backendTransactionOpen = !finished
        abortPending = !finished
    }

    /// Transaction `number` has its outcome: later sends in it are refused; returns the held tickets (to settle
    /// outside the lock) and how many records it sent.
    mutating func endTransaction(_ number: UInt64, _ outcome: TransactionOutcome) -> (held: [DeliveryTicket], sentCount: Int) {
        guard var current = transaction, current.number == number, current.outcome == nil else { return ([], 0) }
        current.outcome = outcome
        let held = current.held
        current.held = []
        transaction = current
        return (held, current.sentCount)
    }

    /// Records a fatal error: returns whether it is the first. ``fail(_:)`` also stops the producer.
    mutating func becomeFatal(_ error: KafkaError) -> Bool {
        guard fatal == nil else { return false }
        fatal = error
        return true
    }

    /// What a fatal error asks for.
    enum FatalAction {
        /// The producer had failed already: nothing more.
        case none
        /// The first fatal error: the producer takes nothing more. Resume `run`, the parked `run()`, when there is
        /// one; run `shutDown` in the background when `run()` was never called (the producer's shutdown, when it is
        /// attached yet: else ``attachShutDown(_:)`` asks for it).
        case stop(resumeRun: UnsafeContinuation<Void, Never>?, shutDown: (@Sendable () async -> Void)?)
    }

    /// A fatal error: the first one is what every later call throws, and stops the producer the way a shutdown
    /// does — a running `run()` closes the backend, and one called later closes it at once; without `run()`, the
    /// producer's shutdown runs in the background.
    mutating func fail(_ error: KafkaError) -> FatalAction {
        guard becomeFatal(error) else { return .none }
        switch lifecycle.triggerShutdown() {
        case .resume(let run): return .stop(resumeRun: run, shutDown: nil)
        case .shutDownWithoutRun: return .stop(resumeRun: nil, shutDown: shutDownWithoutRun)
        case .runWillNotice, .none: return .stop(resumeRun: nil, shutDown: nil)
        }
    }

    /// Attaches the producer's shutdown (close the backend, end the events), which a fatal error runs when
    /// `run()` was never called; attached once, when the producer is made, before anyone can call `run()`.
    /// Returns `true` when a fatal error came before: run it now.
    mutating func attachShutDown(_ shutDown: @escaping @Sendable () async -> Void) -> Bool {
        shutDownWithoutRun = shutDown
        return fatal != nil
    }
}
