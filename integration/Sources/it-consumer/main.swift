// it-consumer: a consumer-group member in a process of its own, for the integration suite's "killed before
// committing" test. It reads with manual commits and never commits, printing one line per message, so when the
// suite SIGKILLs it, every message it saw is still uncommitted and must reach the member that takes over.
//
//   it-consumer BOOTSTRAP TOPIC GROUP
//
// Prints "assigned" once it owns partitions, then "message <partition> <offset> <value>" per message.
import Foundation
import TracedKafka

/// Writes a line to stdout at once (no buffering), so the parent sees it before the process is killed.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: it-consumer BOOTSTRAP TOPIC GROUP\n".utf8))
    exit(2)
}
let configuration = KafkaConsumerConfiguration(
    bootstrapServers: arguments[1].split(separator: ",").map(String.init),
    groupID: arguments[3],
    topics: [arguments[2]],
    autoOffsetReset: .earliest,
    commitMode: .manual,
    properties: [
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "200",
        "topic.metadata.refresh.interval.ms": "500",
        "fetch.wait.max.ms": "50",
    ]
)
let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: configuration)
// A member whose test process died must not linger: exit when the parent is gone.
let parent = getppid()
Thread.detachNewThread {
    while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
    exit(3)
}
try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await consumer.run() }
    group.addTask {
        for await event in events {
            if event.kind == .partitionsAssigned, !event.partitions.isEmpty { emit("assigned") }
        }
    }
    group.addTask {
        for try await message in consumer.messages {
            emit("message \(message.partition) \(message.offset) \(message.valueString ?? "")")
        }
    }
    try await group.waitForAll()
}
