import Foundation
import Synchronization
import Testing
@testable import TracedKafka
import TracedKafkaTesting

@Suite("The read-ahead buffer: bounded in bytes, and no obstacle to commits while it is full", .timeLimit(.minutes(1)))
struct ReadAheadBoundsTests {
    @Test("Large records are read ahead up to maxBufferedBytes, not maxBufferedMessages", arguments: TestBackend.allCases)
    func boundedInBytes(backend: TestBackend) async throws {
        let topic = try await backend.newTopic("bytes")
        let value = [UInt8](repeating: 0x61, count: 100_000)
        try await withRunning(try KafkaProducer(configuration: producerConfiguration(backend))) { producer in
            for _ in 0..<40 { _ = try await producer.send(KafkaProducerRecord(topic: topic, value: value)) }
        }
        var configuration = consumerConfiguration(backend, group: uniqueName("g"), topics: [topic])
        configuration.maxBufferedBytes = 1 << 20
        let consumer = try KafkaConsumer(configuration: configuration)
        let peak = Shared((count: 0, bytes: 0))
        try await handle(consumer, count: 40) { message in
            guard message.offset == 0 else { return }
            // The first handler holds on until the fetcher can add no more: the buffer is full, or it holds every
            // other record (as it would with no bound in bytes).
            while true {
                let (full, count, bytes) = consumer.core.machine.withLock { ($0.room == (0, 0), $0.bufferedCount, $0.bufferedBytes) }
                if full || count == 39 {
                    peak.withLock { $0 = (count, bytes) }
                    return
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let seen = peak.withLock { $0 }
        #expect(seen.count >= 5, "the buffer did fill: \(seen)")
        // The bound, passed by one message at most.
        #expect(seen.bytes <= (1 << 20) + 100_000, "\(seen)")
    }

    @Test("afterHandled commits what was handled while the buffer is full behind a handler that holds on (file queue)")
    func commitsWhileBufferFull() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("busy")
        _ = try await sendValues(3_000, to: topic, in: directory)
        let group = uniqueName("g")
        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
            groupID: group, topics: [topic], autoOffsetReset: .earliest, commitMode: .afterHandled(interval: .milliseconds(100)),
            maxBufferedMessages: 10, tracing: .disabled, backend: .fileQueue(directory: directory)
        ))
        let offsetFile = "\(directory)/groups/\(group)/offsets/\(topic)/0"
        let committedWhileHeld = Shared<Int64?>(nil)
        try await handle(consumer, count: 41) { message in
            guard message.offset == 40 else { return }
            // 40 handled; the buffer is full behind this handler, which holds on until their commit is in the
            // group's offset file (a commit held up behind the full buffer never comes: the suite's time limit ends it).
            while true {
                let text = try? String(contentsOfFile: offsetFile, encoding: .utf8)
                if let committed = text.flatMap({ Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }), committed >= 40 {
                    committedWhileHeld.withLock { $0 = committed }
                    return
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(committedWhileHeld.withLock { $0 } == 40)
    }
}
