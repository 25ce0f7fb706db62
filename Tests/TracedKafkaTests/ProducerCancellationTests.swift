import Foundation
import Synchronization
import Testing
@testable import TracedKafka
import TracedKafkaTesting
import Tracing

/// A running traced producer on a backend of its own whose acknowledgements can be held back: the embedded broker
/// answering late, or the file queue's partition log locked by another holder (its writer waits for the lock).
struct StallableProducer: Sendable {
    let producer: KafkaProducer
    let topic: String
    let tracer: W3CRecordingTracer
    /// Holds acknowledgements back until ``resume``.
    let stall: @Sendable () throws -> Void
    let resume: @Sendable () throws -> Void

    /// The send spans that have ended, the warm-up record's left out.
    var sendSpans: [RecordedSpan] { Array(tracer.spans(named: "send \(topic)").dropFirst()) }

    /// How many send spans have started, the warm-up record's left out. A send starts its span after its check for
    /// cancellation and offers the record right after, before it first suspends (while the queue has room): a sender
    /// whose span has started is past the point where a cancellation leaves its record unsent.
    /// (This producer's send spans are the only spans its tracer starts.)
    var startedSends: Int { tracer.startedSpanCount - 1 }

    /// Returns once a record is outstanding (a short flush times out), so a cancellation finds it handed over.
    func untilOutstanding() async throws {
        try await withDeadline("a record outstanding", .seconds(10)) {
            while (try? await producer.flush(timeout: .milliseconds(10))) != nil { await Task.yield() }
        }
    }
}

/// Returns once the task it runs in is cancelled (at once when it already is).
func untilCancelled() async {
    let (never, continuation) = AsyncStream<Never>.makeStream()
    for await _ in never {}
    continuation.finish()
}

/// Runs `body` with a ``StallableProducer`` on `backend` that has delivered one warm-up record (offset 0), so that
/// connections, metadata and the partition's log are there before anything is held back.
func withStallableProducer<T: Sendable>(
    _ backend: TestBackend,
    maxQueued: Int? = nil,
    _ body: @escaping @Sendable (StallableProducer) async throws -> T
) async throws -> T {
    let topic = uniqueName("stall")
    let tracer = W3CRecordingTracer()
    var configuration: KafkaProducerConfiguration
    let stall: @Sendable () throws -> Void, resume: @Sendable () throws -> Void
    let keep: any Sendable
    switch backend {
    case .librdkafka:
        let cluster = try EmbeddedKafkaCluster(brokers: 1)
        try cluster.createTopic(topic, partitions: 1)
        configuration = producerConfiguration(cluster, properties: maxQueued.map { ["queue.buffering.max.messages": "\($0)"] } ?? [:])
        stall = { try cluster.setRoundTripTime(1, .seconds(5)) }
        resume = { try cluster.setRoundTripTime(1, .zero) }
        keep = cluster
    case .fileQueue:
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("stall-queue")).path
        try KafkaFileQueue.createTopic(topic, partitions: 1, in: directory)
        configuration = producerConfiguration(.fileQueue)
        configuration.backend = .fileQueue(KafkaFileQueueConfiguration(directory: directory, maxQueuedRecords: maxQueued ?? 100_000))
        // The writer appends under the log's exclusive flock; another holder of it makes the writer wait.
        let holder = Shared<Int32>(-1)
        stall = {
            let descriptor = open("\(directory)/topics/\(topic)/0.log", O_RDWR)
            guard descriptor >= 0, flock(descriptor, LOCK_EX) == 0 else { throw KafkaError(code: .fileQueue, reason: "cannot lock the log") }
            holder.withLock { $0 = descriptor }
        }
        resume = {
            let descriptor = holder.withLock { $0 }
            _ = flock(descriptor, LOCK_UN)
            close(descriptor)
        }
        keep = directory
    }
    configuration.tracing = KafkaTracingConfiguration(tracer: tracer)
    let producer = try KafkaProducer(configuration: configuration)
    defer { withExtendedLifetime(keep) {} }
    return try await withRunning(producer) { producer in
        #expect(try await producer.send(KafkaProducerRecord(topic: topic, value: "warm-up")).offset == 0)
        return try await body(StallableProducer(producer: producer, topic: topic, tracer: tracer, stall: stall, resume: resume))
    }
}

@Suite("Cancelling sends on both backends", .timeLimit(.minutes(2)))
struct ProducerCancellationTests {
    @Test(
        "A send cancelled while it awaits the acknowledgement throws .cancelled before the broker answers; the record is still delivered and its span ends with the outcome",
        arguments: TestBackend.allCases
    )
    func cancelWhileAwaiting(_ backend: TestBackend) async throws {
        try await withStallableProducer(backend) { stallable in
            try stallable.stall()
            let sending = Task { try await stallable.producer.send(KafkaProducerRecord(topic: stallable.topic, value: "cancelled")) }
            try await stallable.untilOutstanding()
            let cancelledAt = ContinuousClock.now
            sending.cancel()
            let error = await #expect(throws: KafkaError.self) { try await sending.value }
            let waited = ContinuousClock.now - cancelledAt
            #expect(error?.code == .cancelled)
            #expect(stallable.sendSpans.isEmpty, "the acknowledgement is still held back, so the send returned before it")
            // A sanity bound, far above the few milliseconds it takes and far below the held-back acknowledgement.
            #expect(waited < .seconds(1))
            try stallable.resume()
            try await stallable.producer.flush()
            let span = try #require(stallable.sendSpans.first)
            #expect(span.int("messaging.kafka.offset") == 1, "the record was delivered after its sender gave up")
            #expect(span.status?.code != .error)
        }
    }

    @Test(
        "1,000 sends with half cancelled at random, before or after their record is handed over: each returns its report or .cancelled, and every record handed over has its outcome on its span",
        arguments: TestBackend.allCases
    )
    func halfCancelled(_ backend: TestBackend) async throws {
        enum Role { case notCancelled, cancelledBeforeHandOver, cancelledAfterHandOver }
        try await withStallableProducer(backend) { stallable in
            try stallable.stall()
            var generator = SplitMix64(seed: 42)
            let roles = (Array(repeating: Role.notCancelled, count: 500) + Array(repeating: .cancelledBeforeHandOver, count: 250)
                + Array(repeating: .cancelledAfterHandOver, count: 250)).shuffled(using: &generator)
            let senders = roles.enumerated().map { index, role in
                Task {
                    // Sends only once cancelled: its record is never handed over.
                    if role == .cancelledBeforeHandOver { await untilCancelled() }
                    return try await stallable.producer.send(KafkaProducerRecord(topic: stallable.topic, value: "\(index)"))
                }
            }
            // Every sender that sends at once has started its span, so its record is handed over (or will be before
            // its send first suspends); the broker's acknowledgements are still held back.
            try await withDeadline("750 records handed over", .seconds(30)) {
                while stallable.startedSends < 750 { await Task.yield() }
            }
            #expect(stallable.sendSpans.isEmpty, "no acknowledgement came yet")
            for index in roles.indices.shuffled(using: &generator) where roles[index] != .notCancelled { senders[index].cancel() }
            try stallable.resume()
            var delivered: [Int64] = [], wrong: [String] = []
            for (sender, role) in zip(senders, roles) {
                do {
                    delivered.append(try await sender.value.offset)
                    if role != .notCancelled { wrong.append("\(role) delivered") }
                } catch let error as KafkaError where error.code == .cancelled {
                    let got: Role = error.reason.contains("may still be delivered") ? .cancelledAfterHandOver : .cancelledBeforeHandOver
                    if role != got { wrong.append("\(role): \(error.reason)") }
                }
            }
            try await stallable.producer.flush()
            #expect(wrong.isEmpty, "\(wrong.count) senders did not get what their cancellation calls for, e.g. \(wrong.prefix(3))")
            #expect(delivered.count == 500)
            let spans = stallable.sendSpans
            #expect(spans.count == 750, "one span per record handed over, none for the 250 never handed over")
            let offsets = spans.compactMap { $0.int("messaging.kafka.offset") }
            #expect(offsets.count == spans.count, "every span ended with the broker's outcome")
            #expect(Set(delivered).isSubset(of: Set(offsets)))
            #expect(Set(offsets) == Set(1...750), "each record handed over delivered once, those cancelled after hand-over too")
        }
    }

    @Test("A sender waiting for room in a full queue can be cancelled; it sends nothing and the records ahead are still delivered", arguments: TestBackend.allCases)
    func cancelWhileQueueFull(_ backend: TestBackend) async throws {
        try await withStallableProducer(backend, maxQueued: 1) { stallable in
            let producer = stallable.producer, topic = stallable.topic
            try stallable.stall()
            let ahead = Task { try await producer.send(KafkaProducerRecord(topic: topic, value: "ahead")) }
            try await stallable.untilOutstanding()
            if backend == .fileQueue {
                // The writer holds "ahead" and waits for the lock; "queued" takes the queue's one place (enqueue returns
                // once it has).
                try await producer.enqueue(KafkaProducerRecord(topic: topic, value: "queued"))
            }
            let waiting = Task { try await producer.send(KafkaProducerRecord(topic: topic, value: "waiting")) }
            while producer.core.machine.withLock({ $0.roomWaiterCount }) == 0 { await Task.yield() }
            waiting.cancel()
            let error = await #expect(throws: KafkaError.self) { try await waiting.value }
            #expect(error?.code == .cancelled)
            #expect(error?.reason.contains("not sent") == true)
            try stallable.resume()
            #expect(try await ahead.value.offset == 1)
            try await producer.flush()
            let spans = stallable.sendSpans
            #expect(spans.count == (backend == .fileQueue ? 3 : 2), "the cancelled record's span ended with its refusal")
            #expect(spans.filter { $0.status?.code == .error }.count == 1)
        }
    }
}
