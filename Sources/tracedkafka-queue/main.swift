// tracedkafka-queue: produce to and consume from a local file-queue directory from the command line.
//
//   swift run tracedkafka-queue produce --dir DIR --topic T --count N [--prefix P] [--partitions K]
//       sends N records (value "<P><i>", key "<P>-<i>"), printing "acked <partition> <offset> <value>" per ack
//   swift run tracedkafka-queue consume --dir DIR --topic T --group G --count N
//       prints "message <partition> <offset> <value>" per message and exits after N
//
// The test suite runs it as separate processes sharing one directory.
import Foundation
import Logging
import TracedKafka

struct Arguments {
    var command = ""
    var values: [String: String] = [:]

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        guard let command = rest.popFirst() else { throw UsageError() }
        self.command = command
        while let flag = rest.popFirst() {
            guard flag.hasPrefix("--"), let value = rest.popFirst() else { throw UsageError() }
            values[String(flag.dropFirst(2))] = value
        }
    }

    func string(_ name: String) throws -> String {
        guard let value = values[name] else { throw UsageError() }
        return value
    }

    func int(_ name: String, default fallback: Int? = nil) throws -> Int {
        guard let value = values[name].flatMap(Int.init) ?? fallback else { throw UsageError() }
        return value
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String {
        """
        usage: tracedkafka-queue produce --dir DIR --topic T --count N [--prefix P] [--partitions K]
               tracedkafka-queue consume --dir DIR --topic T --group G --count N
        """
    }
}

/// Writes one line to stdout at once (unbuffered), so a parent process sees it even if this one is killed next.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func produce(_ arguments: Arguments) async throws {
    let directory = try arguments.string("dir"), topic = try arguments.string("topic")
    let count = try arguments.int("count"), prefix = arguments.values["prefix"] ?? "m"
    try KafkaFileQueue.createTopic(topic, partitions: try arguments.int("partitions", default: 1), in: directory)
    let configuration = KafkaProducerConfiguration(tracing: .disabled, backend: .fileQueue(directory: directory))
    let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await producer.run() }
        group.addTask {
            var acknowledged = 0
            for await event in events {
                switch event {
                case .delivered(let report):
                    emit("acked \(report.partition) \(report.offset) \(prefix)\(report.messageID.rawValue - 1)")
                case .failed(let id, _, let error):
                    emit("failed \(id) \(error)")
                case .error(let error):
                    emit("error \(error)")
                    continue
                }
                acknowledged += 1
                if acknowledged == count { producer.triggerGracefulShutdown() }
            }
        }
        for index in 0..<count {
            try await producer.enqueue(KafkaProducerRecord(topic: topic, key: "\(prefix)-\(index)", value: "\(prefix)\(index)"))
        }
        try await group.waitForAll()
    }
}

func consume(_ arguments: Arguments) async throws {
    let count = try arguments.int("count")
    let configuration = KafkaConsumerConfiguration(
        groupID: try arguments.string("group"),
        topics: [try arguments.string("topic")],
        autoOffsetReset: .earliest,
        commitMode: .afterHandled(interval: .milliseconds(100)),
        tracing: .disabled,
        backend: .fileQueue(directory: try arguments.string("dir"))
    )
    let consumer = try KafkaConsumer(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await consumer.run() }
        var received = 0
        for try await message in consumer.messages {
            emit("message \(message.partition) \(message.offset) \(message.valueString ?? "")")
            received += 1
            if received == count { consumer.triggerGracefulShutdown() }
        }
        try await group.waitForAll()
    }
}

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
do {
    let arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
    switch arguments.command {
    case "produce": try await produce(arguments)
    case "consume": try await consume(arguments)
    default: throw UsageError()
    }
} catch {
    FileHandle.standardError.write(Data("tracedkafka-queue: \(error)\n".utf8))
    exit(1)
}
