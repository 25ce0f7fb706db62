import Foundation
import Testing
@testable import TracedKafka

/// The slot an awaited `send` waits on: its outcome may come before or after the sender waits, exactly once.
@Suite("An awaited send's delivery outcome")
struct DeliveryPromiseTests {
    static func report(offset: Int64) -> KafkaDeliveryReport {
        KafkaDeliveryReport(messageID: KafkaProducerMessageID(rawValue: 7), topic: "t", partition: 2, offset: offset, timestamp: nil)
    }

    @Test("An outcome that comes before the sender waits is returned when it does")
    func outcomeBeforeWaiting() async throws {
        let promise = DeliveryPromise()
        promise.fulfil(.success(Self.report(offset: 41)))
        #expect(try await promise.value.offset == 41)
    }

    @Test("A sender that waits first is resumed with the outcome; a second outcome is ignored")
    func waitingBeforeOutcome() async throws {
        let promise = DeliveryPromise()
        let waiting = Task { try await promise.value }
        try await Task.sleep(for: .milliseconds(50))  // most likely waiting by now; either order must work
        promise.fulfil(.success(Self.report(offset: 42)))
        promise.fulfil(.success(Self.report(offset: 99)))
        let delivered = try await waiting.value
        #expect(delivered.offset == 42)
        #expect(delivered.partition == 2)
    }

    @Test("A failed delivery is thrown to the sender as the KafkaError it came with")
    func failure() async throws {
        let promise = DeliveryPromise()
        let waiting = Task { try await promise.value }
        promise.fulfil(.failure(KafkaError(code: .timedOut, reason: "no answer")))
        let error = await #expect(throws: KafkaError.self) { try await waiting.value }
        #expect(error?.code == .timedOut)
        #expect(error?.reason == "no answer")
    }

    @Test("A cancelled sender still waits for its record's outcome, which can't be taken back")
    func cancelledSenderWaits() async throws {
        let promise = DeliveryPromise()
        let waiting = Task { try await promise.value }
        waiting.cancel()
        try await Task.sleep(for: .milliseconds(50))
        promise.fulfil(.success(Self.report(offset: 43)))
        #expect(try await waiting.value.offset == 43)
    }

    @Test("Outcomes and waiters racing from many tasks: every sender gets its own outcome once")
    func racing() async throws {
        let promises = (0..<2_000).map { _ in DeliveryPromise() }
        let offsets = try await withThrowingTaskGroup(of: Int64.self) { group in
            for (index, promise) in promises.enumerated() {
                group.addTask { try await promise.value.offset }
                group.addTask {
                    promise.fulfil(.success(Self.report(offset: Int64(index))))
                    return -1
                }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(offsets.filter { $0 >= 0 }.sorted() == (0..<2_000).map(Int64.init))
    }
}
