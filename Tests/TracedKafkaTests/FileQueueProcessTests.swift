import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// A `tracedkafka-queue` child process whose stdout lines are collected as they arrive. Started with
/// ``ChildProcess`` (`posix_spawn`), not Foundation's `Process`, whose `run()` can crash the test process on Linux.
final class QueueToolProcess: Sendable {
    private let process: ChildProcess
    private let lines = Shared<[String]>([])
    private let finished = DispatchSemaphore(value: 0)

    /// The tool is built beside the test bundle (`swift build --build-tests` builds every product).
    static var toolPath: String {
        let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return bundle.appendingPathComponent("tracedkafka-queue").path
    }

    /// - Parameters:
    ///   - arguments: The tool's arguments.
    ///   - fileSizeLimitKiB: A limit on the size of any file the tool writes (`ulimit -f`), with `SIGXFSZ` ignored,
    ///     so a write past it fails with `EFBIG` after a short write — a full disk, made to order.
    init(_ arguments: [String], fileSizeLimitKiB: Int? = nil) throws {
        if let fileSizeLimitKiB {
            process = try ChildProcess(
                "/bin/bash", ["-c", "trap '' XFSZ; ulimit -f \(fileSizeLimitKiB); exec \"$0\" \"$@\"", Self.toolPath] + arguments,
                standardOutput: .pipe, standardError: .nullDevice
            )
        } else {
            process = try ChildProcess(Self.toolPath, arguments, standardOutput: .pipe, standardError: .nullDevice)
        }
        let reader = process.standardOutput!
        let thread = Thread { [lines, finished] in
            // Whole lines only: a line cut short by a kill is left out.
            while let line = reader.readLine() { lines.withLock { $0.append(line) } }
            finished.signal()
        }
        thread.start()
    }

    var output: [String] { lines.withLock { $0 } }

    func kill() { process.kill(SIGKILL) }

    /// Waits (off the cooperative pool) until the process has exited and its output is read; returns how it ended.
    func waitUntilExit() async -> ChildProcess.Termination {
        let process = self.process, finished = self.finished
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let status = process.waitUntilExit()
                finished.wait()
                continuation.resume(returning: status)
            }
        }
    }
}

@Suite("File queue: several processes on one directory")
struct FileQueueProcessTests {
    @Test("Two producer processes and a consumer process at once: nothing lost, nothing duplicated, offsets dense")
    func concurrentProcesses() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("shared")
        try KafkaFileQueue.createTopic(topic, partitions: 3, in: directory)
        let perProducer = 5_000
        let consumer = try QueueToolProcess(["consume", "--dir", directory, "--topic", topic, "--group", "g", "--count", "\(2 * perProducer)"])
        let producers = try ["A", "B"].map { prefix in
            try QueueToolProcess(["produce", "--dir", directory, "--topic", topic, "--count", "\(perProducer)", "--prefix", prefix, "--partitions", "3"])
        }
        let statuses = try await withDeadline("three processes", .seconds(90)) {
            var statuses: [ChildProcess.Termination] = []
            for process in producers + [consumer] { statuses.append(await process.waitUntilExit()) }
            return statuses
        }
        #expect(statuses == [.exited(0), .exited(0), .exited(0)])
        for producer in producers { #expect(producer.output.filter { $0.hasPrefix("acked ") }.count == perProducer) }

        let messages = consumer.output.filter { $0.hasPrefix("message ") }.map { $0.split(separator: " ") }
        let values = messages.map { String($0[3]) }
        let expected = Set(["A", "B"].flatMap { prefix in (0..<perProducer).map { "\(prefix)\($0)" } })
        #expect(values.count == 2 * perProducer)
        #expect(Set(values) == expected)
        // Appends never interleaved: each partition's offsets are 0, 1, 2… with no gap or repeat.
        for partition in 0..<3 {
            let offsets = messages.filter { $0[1] == "\(partition)" }.map { Int($0[2])! }
            #expect(offsets == Array(0..<offsets.count))
        }
    }

    @Test("A writer killed with SIGKILL mid-stream loses no acknowledged record and leaves a clean tail")
    func killedWriter() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("killed")
        let writer = try QueueToolProcess(["produce", "--dir", directory, "--topic", topic, "--count", "10000000", "--prefix", "k"])
        try await withDeadline("3,000 acknowledgements") {
            while writer.output.count < 3_000 { try await Task.sleep(for: .milliseconds(5)) }
        }
        writer.kill()
        #expect(await writer.waitUntilExit() == .signalled(SIGKILL))
        let acknowledged = writer.output.filter { $0.hasPrefix("acked ") }.map { String($0.split(separator: " ")[3]) }
        #expect(acknowledged.count >= 3_000)

        // The next writer repairs whatever the kill left, and appends after the last whole record.
        let end = try await withRunning(try fileQueueProducer(directory)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "end"))
        }
        let (consumer, events) = try fileQueueConsumer(directory, topic: topic)
        let messages = try await consume(consumer, count: Int(end.offset) + 1)
        let values = messages.compactMap(\.valueString)
        #expect(values.last == "end")
        #expect(messages.map(\.offset) == Array(0...end.offset))
        #expect(Set(values).count == values.count)
        #expect(Set(acknowledged).isSubset(of: Set(values)))
        for await event in events { if let error = event.error { Issue.record("unexpected error event: \(error)") } }
    }

    @Test("An append that fails part-way (file size limit) keeps every record that reached the file whole; the next writer appends after them")
    func failedAppendKeepsWholeRecords() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("full")
        let limit = 64 * 1024
        let writer = try QueueToolProcess(
            ["produce", "--dir", directory, "--topic", topic, "--count", "5000", "--prefix", "f"], fileSizeLimitKiB: limit / 1024
        )
        #expect(try await withDeadline("the limited writer") { await writer.waitUntilExit() } == .exited(0))
        let acknowledged = writer.output.filter { $0.hasPrefix("acked ") }.map { String($0.split(separator: " ")[3]) }
        let failed = writer.output.filter { $0.hasPrefix("failed ") }
        #expect(acknowledged.count + failed.count == 5000)
        #expect(!failed.isEmpty, "the limit must have made appends fail")

        // The failed write stopped at the limit: whatever was whole before it stays (a reader may have delivered
        // it), so the log ends within one record (< 100 bytes here) of the limit, with no partial record.
        let logPath = "\(directory)/topics/\(topic)/0.log"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int)
        #expect(size <= limit && limit - size < 100, "log size \(size) against the limit \(limit)")

        // The next writer appends right after the kept records; every record reads back once, in order.
        let end = try await withRunning(try fileQueueProducer(directory)) { producer in
            try await producer.send(KafkaProducerRecord(topic: topic, value: "end"))
        }
        let (consumer, events) = try fileQueueConsumer(directory, topic: topic)
        let messages = try await consume(consumer, count: Int(end.offset) + 1)
        let values = messages.compactMap(\.valueString)
        #expect(messages.map(\.offset) == Array(0...end.offset))
        #expect(values == (0..<Int(end.offset)).map { "f\($0)" } + ["end"])
        #expect(Int(end.offset) >= acknowledged.count)
        #expect(Set(acknowledged).isSubset(of: Set(values)))
        for await event in events { if let error = event.error { Issue.record("unexpected error event: \(error)") } }
    }

    @Test("On a full disk an existing queue still opens: a consumer reads everything, a producer starts, fails its sends clearly and reports the disk as an error event")
    func fullDiskStillOpens() async throws {
        let directory = freshQueueDirectory()
        let topic = uniqueName("fulldisk")
        _ = try await sendValues(20, to: topic, in: directory)
        // A limit of 0 KiB: every write of a byte fails with EFBIG, as on a disk with no room left.
        let consumer = try QueueToolProcess(
            ["consume", "--dir", directory, "--topic", topic, "--group", "g", "--count", "20"], fileSizeLimitKiB: 0
        )
        #expect(try await withDeadline("the consumer on a full disk", .seconds(30)) { await consumer.waitUntilExit() } == .exited(0))
        #expect(consumer.output.filter { $0.hasPrefix("message ") }.map { $0.split(separator: " ")[3] } == (0..<20).map { "v\($0)"[...] })

        let producer = try QueueToolProcess(
            ["produce", "--dir", directory, "--topic", topic, "--count", "5"], fileSizeLimitKiB: 0
        )
        #expect(try await withDeadline("the producer on a full disk", .seconds(30)) { await producer.waitUntilExit() } == .exited(0))
        let failed = producer.output.filter { $0.hasPrefix("failed ") }, errors = producer.output.filter { $0.hasPrefix("error ") }
        #expect(failed.count == 5)
        #expect(errors.count == 1, "the writer's failure is an error event too, once: \(producer.output)")
        #expect(errors.first?.contains("KafkaError.fileQueue") == true)
        #expect(failed.count + errors.count == producer.output.count)
    }
}
