import Synchronization
import Testing
@testable import TracedKafka
import TracedKafkaTesting

/// The producer's state machine alone: no broker, no file queue, no threads but the test's.
@Suite("The producer's state machine")
struct ProducerStateMachineTests {
    /// A machine whose `run()` has begun.
    static func running(transactional: Bool = false) -> ProducerStateMachine {
        var machine = ProducerStateMachine(isTransactional: transactional)
        _ = try? machine.lifecycle.run()
        return machine
    }

    /// A transactional machine with transaction 1 open.
    static func inTransaction() throws -> ProducerStateMachine {
        var machine = running(transactional: true)
        let (initialize, abortFirst) = try machine.startTransactionRun()
        #expect(initialize && !abortFirst)
        machine.transactionsDidInitialize()
        machine.willBeginTransaction()
        #expect(machine.transactionBegan() == 1)
        return machine
    }

    @Test("Records get increasing ids while the producer runs, and none once shutdown is asked for")
    func admission() throws {
        var machine = Self.running()
        let first = try machine.admit(transaction: nil)
        let second = try machine.admit(transaction: nil)
        #expect(second.rawValue == first.rawValue + 1)
        #expect(machine.callsInFlight == 2)
        _ = machine.callEnded()
        _ = machine.callEnded()
        _ = machine.lifecycle.triggerShutdown()
        #expect(throws: KafkaError.self) { try machine.admit(transaction: nil) }
        #expect(machine.callsInFlight == 0, "a refused admission counts no call")
    }

    @Test("A send racing shutdown: close waits for the call in flight, and the call's end lets it close")
    func closeWaitsForCallsInFlight() throws {
        var machine = Self.running()
        _ = try machine.admit(transaction: nil)
        _ = machine.lifecycle.triggerShutdown()
        guard case .close(_, let drain) = machine.beginClose() else { Issue.record("close did not begin"); return }
        #expect(drain, "a call is in flight")
        #expect(machine.backend == .draining)
        // A retry of a record admitted before shutdown is refused now.
        #expect(throws: KafkaError.self) { try machine.beginCall(transaction: nil) }
        let last = machine.callEnded()
        let waiter = machine.takeDrainWaiter()
        #expect(last, "the call close waited for")
        #expect(waiter == nil, "nobody parked yet")
        #expect(machine.backend == .closing, "the last call ended: the closing task finds nothing to wait for")
        guard case .waitForClose = machine.beginClose() else { Issue.record("a second close did not wait for the first"); return }
        #expect(machine.closed().isEmpty)
        guard case .none = machine.beginClose() else { Issue.record("a close after the backend closed did something"); return }
    }

    @Test("Close with no call in flight closes at once; a second close waits for it")
    func closeWithNothingInFlight() {
        var machine = Self.running()
        guard case .close(let waiters, let drain) = machine.beginClose() else { Issue.record("close did not begin"); return }
        #expect(waiters.isEmpty && !drain)
        #expect(machine.backend == .closing)
        #expect(throws: KafkaError.self) { try machine.admit(transaction: nil) }
        guard case .waitForClose = machine.beginClose() else { Issue.record("a second close did not wait for the first"); return }
    }

    @Test("Flush is refused once shutdown has begun, and after a fatal error")
    func flushDuringShutdown() {
        var machine = Self.running()
        #expect(throws: Never.self) { try machine.requireRunning() }
        _ = machine.lifecycle.triggerShutdown()
        let error = #expect(throws: KafkaError.self) { try machine.requireRunning() }
        #expect(error?.code == .shutDown)
        var fatal = Self.running()
        _ = fatal.becomeFatal(KafkaError(code: .fatal, reason: "fenced"))
        #expect((#expect(throws: KafkaError.self) { try fatal.requireRunning() })?.code == .fatal)
    }

    @Test("A transactional producer sends only in its open transaction, and runs one transaction at a time")
    func transactionRules() throws {
        var machine = try Self.inTransaction()
        #expect((#expect(throws: KafkaError.self) { try machine.admit(transaction: nil) })?.code == .notInTransaction)
        #expect((#expect(throws: KafkaError.self) { try machine.startTransactionRun() })?.code == .alreadyRunning)
        _ = try machine.admit(transaction: 1)
        _ = machine.callEnded()
        _ = machine.taken(in: 1, ticket: nil)
        let (held, sent) = machine.endTransaction(1, .committed)
        #expect(held.isEmpty && sent == 1)
        #expect((#expect(throws: KafkaError.self) { try machine.admit(transaction: 1) })?.code == .notInTransaction)
        machine.transactionCallEnded(finished: true)
        machine.transactionRunEnded()
        let (initialize, abortFirst) = try machine.startTransactionRun()
        #expect(!initialize && !abortFirst, "registered once; the commit finished")
    }

    @Test("A transaction holds its traced sends' tickets; a record handed over after its transaction ended takes the outcome at once")
    func heldTickets() throws {
        var machine = try Self.inTransaction()
        let tracer = W3CRecordingTracer()
        let early = DeliveryTicketTests.ticket(inTransaction: true, tracer: tracer)
        let late = DeliveryTicketTests.ticket(inTransaction: true, tracer: tracer)
        _ = try machine.admit(transaction: 1)
        _ = try machine.admit(transaction: 1)
        _ = machine.callEnded()
        let settleEarly = machine.taken(in: 1, ticket: early)
        #expect(settleEarly == nil)
        let (held, sent) = machine.endTransaction(1, .committed)
        #expect(held.map(ObjectIdentifier.init) == [ObjectIdentifier(early)])
        #expect(sent == 1)
        // The second call returns only now, after the transaction's end.
        _ = machine.callEnded()
        guard case .committed = machine.taken(in: 1, ticket: late) else {
            Issue.record("the late record did not take the transaction's outcome")
            return
        }
    }

    @Test("A fatal error during a transaction: every send and every new transaction throws it; only the first one counts")
    func fatalDuringTransaction() throws {
        var machine = try Self.inTransaction()
        let fenced = KafkaError(code: .fatal, reason: "fenced")
        let first = machine.becomeFatal(fenced), second = machine.becomeFatal(KafkaError(code: .fatal, reason: "again"))
        #expect(first && !second)
        #expect((#expect(throws: KafkaError.self) { try machine.admit(transaction: 1) })?.reason == "fenced")
        machine.transactionRunEnded()
        #expect((#expect(throws: KafkaError.self) { try machine.startTransactionRun() })?.reason == "fenced")
    }

    @Test("Close aborts a transaction the backend may hold open; not one whose commit finished")
    func closeAbortsOpenTransaction() throws {
        var open = try Self.inTransaction()
        let whileOpen = open.backendTransactionOpen
        open.transactionCallEnded(finished: false)
        let afterFailedCommit = open.backendTransactionOpen
        open.transactionCallEnded(finished: true)
        let afterCommit = open.backendTransactionOpen
        #expect(whileOpen)
        #expect(afterFailedCommit, "a failed commit leaves it open")
        #expect(!afterCommit)
        var failedAbort = try Self.inTransaction()
        failedAbort.transactionCallEnded(finished: false)
        failedAbort.transactionRunEnded()
        let abortFirst = try failedAbort.startTransactionRun().abortFirst
        #expect(abortFirst, "an unfinished abort is finished before the next begins")
    }
}
