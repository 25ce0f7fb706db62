// local-kafka: an embedded Kafka cluster (librdkafka's mock cluster) for local development and other clients.
//
//   swift run local-kafka [--brokers N] [--partitions P] [--topic NAME]...
//
// Prints the bootstrap servers (`host:port,...`) as its first line on stdout, then serves until SIGINT or SIGTERM.
import Foundation
import TracedKafkaTesting

func usage(_ message: String) -> Never {
    FileHandle.standardError.write(Data("local-kafka: \(message)\nusage: local-kafka [--brokers N] [--partitions P] [--topic NAME]...\n".utf8))
    exit(2)
}

var brokers = 1
var partitions = 1
var topics: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    func value() -> String {
        guard let value = arguments.popFirst() else { usage("\(argument) needs a value") }
        return value
    }
    switch argument {
    case "--brokers":
        guard let n = Int(value()), n >= 1 else { usage("--brokers takes a whole number of at least 1") }
        brokers = n
    case "--partitions":
        guard let n = Int(value()), n >= 1 else { usage("--partitions takes a whole number of at least 1") }
        partitions = n
    case "--topic":
        topics.append(value())
    case "-h", "--help":
        print("usage: local-kafka [--brokers N] [--partitions P] [--topic NAME]...")
        print("  --brokers N     brokers in the cluster (default 1)")
        print("  --partitions P  partitions of each --topic (default 1)")
        print("  --topic NAME    create a topic before serving (repeatable); others are created on first use")
        exit(0)
    default:
        usage("unknown argument \(argument)")
    }
}

// SIGINT and SIGTERM are blocked before any thread starts (every thread inherits the mask) and taken with sigwait
// on this thread, so no thread can swallow them.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGINT)
sigaddset(&stopSignals, SIGTERM)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

do {
    let cluster = try EmbeddedKafkaCluster(brokers: brokers)
    for topic in topics {
        try cluster.createTopic(topic, partitions: partitions, replicationFactor: min(brokers, 3))
    }
    // Unbuffered, so a parent process reading the pipe gets the line at once.
    FileHandle.standardOutput.write(Data("\(cluster.bootstrapServers)\n".utf8))
    var received: Int32 = 0
    sigwait(&stopSignals, &received)
    cluster.shutdown()
    exit(0)
} catch {
    FileHandle.standardError.write(Data("local-kafka: \(error)\n".utf8))
    exit(1)
}
