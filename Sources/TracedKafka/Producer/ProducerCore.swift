import Logging
import Synchronization

/// A producer's ``ProducerStateMachine`` under its lock, shared by the ``KafkaProducer`` and its backend, and the
/// side effects its actions ask for: resuming senders waiting for room and the closing task, settling tickets.
///
/// The backend reports into it when its queue may have room again (``roomMade()``), and so does the producer's events
/// stream when its reader makes room; the lock is never held across a call into the backend.
final class ProducerCore: ClientLifecycleLocking {
    let machine: Mutex<ProducerStateMachine>

    init(isTransactional: Bool) {
        machine = Mutex(ProducerStateMachine(isTransactional: isTransactional))
    }

    func withLifecycle<R>(_ body: (inout ClientLifecycle) throws -> R) rethrows -> R {
        try machine.withLock { try body(&$0.lifecycle) }
    }

    // MARK: - Calls into the backend

    /// Admits a record and counts the call that hands it over; see ``ProducerStateMachine/admit(transaction:)``.
    func admit(transaction: UInt64?) throws -> KafkaProducerMessageID {
        try machine.withLock { try $0.admit(transaction: transaction) }
    }

    /// Counts another call for an admitted record; see ``ProducerStateMachine/beginCall(transaction:)``.
    func beginCall(transaction: UInt64?) throws {
        try machine.withLock { try $0.beginCall(transaction: transaction) }
    }

    /// A call counted by ``admit(transaction:)`` or ``beginCall(transaction:)`` has returned.
    func callEnded() {
        guard machine.withLock({ $0.callEnded() }) else { return }
        machine.withLock { $0.takeDrainWaiter() }?.resume()
    }

    /// The backend took a record sent in a transaction; see ``ProducerStateMachine/taken(in:ticket:)``.
    func taken(in transaction: UInt64, ticket: DeliveryTicket?) {
        if let outcome = machine.withLock({ $0.taken(in: transaction, ticket: ticket) }) { ticket?.settle(outcome) }
    }

    /// Attaches the producer's shutdown (close the backend, end the events), for a fatal error that comes before
    /// `run()`; runs it now, in the background, when one came already. Called once, when the producer is made.
    func attachShutDown(_ shutDown: @escaping @Sendable () async -> Void) {
        if machine.withLock({ $0.attachShutDown(shutDown) }) { Task { await shutDown() } }
    }

    /// A fatal error, from the backend or a transactional call: every later call throws it, and the producer shuts
    /// down — through a waiting `run()`, at once in a `run()` called later, or in the background when `run()` was
    /// never called — so the backend is closed once and the waiting senders fail. The first is logged to `logger`.
    /// - Returns: Whether it was the first fatal error (a later one changes nothing).
    @discardableResult
    func fail(_ error: KafkaError, logger: Logger) -> Bool {
        guard case .stop(let run, let shutDown) = machine.withLock({ $0.fail(error) }) else { return false }
        logger.critical("Fatal producer error, the producer stops: \(error)")
        run?.resume()
        if let shutDown { Task { await shutDown() } }
        return true
    }

    // MARK: - Room in the backend's queue

    /// Read before an offer that may find the queue full; passed to ``waitForRoom(after:)``.
    var roomGeneration: UInt64 { machine.withLock { $0.roomGeneration } }

    /// Parks, without blocking a thread, until ``roomMade()`` is next called. Returns at once when room was made
    /// since `generation` was read, when the producer is closing, or when the task is cancelled.
    nonisolated(nonsending) func waitForRoom(after generation: UInt64) async {
        let id = machine.withLock { $0.makeRoomWaiterID() }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                // Checked under the lock: a cancellation either comes first (no parking) or finds the sender parked.
                let parked = machine.withLock { Task.isCancelled ? false : $0.parkForRoom(id, after: generation, continuation) }
                if !parked { continuation.resume() }
            }
        } onCancel: {
            machine.withLock { $0.cancelRoomWait(id) }?.resume()
        }
    }

    /// The backend may have room again, or the events stream's reader made room: the senders waiting for either
    /// look again.
    func roomMade() {
        for waiter in machine.withLock({ $0.roomMade() }) { waiter.resume() }
    }

    // MARK: - Closing

    /// Closes the backend once: no call starts any more, the senders waiting for room resume (and find the producer
    /// shut down), the calls in flight end, then `closeBackend` runs, told whether to abort an open transaction.
    /// A close that comes while another is under way returns once that one has closed the backend.
    func close(_ closeBackend: (_ abortTransaction: Bool) async -> Void) async {
        switch machine.withLock({ $0.beginClose() }) {
        case .none:
            return
        case .waitForClose:
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                if !machine.withLock({ $0.parkUntilClosed(continuation) }) { continuation.resume() }
            }
        case .close(let waiters, let drain):
            for waiter in waiters { waiter.resume() }
            if drain {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    if !machine.withLock({ $0.parkDrain(continuation) }) { continuation.resume() }
                }
            }
            await closeBackend(machine.withLock { $0.backendTransactionOpen })
            for waiter in machine.withLock({ $0.closed() }) { waiter.resume() }
        }
    }
}
