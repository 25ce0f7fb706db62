import Foundation
import Synchronization
import Testing
import TracedKafka
import TracedKafkaTesting

/// The broker the suite talks to over TCP, and the names of this run.
enum Integration {
    /// `KAFKA_BOOTSTRAP_SERVERS`: set by `integration/run` (the local broker, or the cluster you named). The suite
    /// refuses to run without it rather than silently starting a broker in-process.
    static let bootstrapServers: String = {
        guard let servers = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"], !servers.isEmpty else {
            fatalError("KAFKA_BOOTSTRAP_SERVERS is not set: run the suite through integration/run")
        }
        return servers
    }()

    /// The brokers as a list, for the client configurations.
    static var bootstrapServerList: [String] { bootstrapServers.split(separator: ",").map(String.init) }

    /// This run's id (`INTEGRATION_RUN_ID`, else time and pid): every topic and group name carries it, so runs never
    /// collide on a shared cluster.
    static let runID: String = {
        if let id = ProcessInfo.processInfo.environment["INTEGRATION_RUN_ID"], !id.isEmpty { return id }
        return "\(Int(Date().timeIntervalSince1970))-\(ProcessInfo.processInfo.processIdentifier)"
    }()

    /// Topic suffixes `integration/run` created beforehand on the local broker (librdkafka's mock cluster does not
    /// answer CreateTopics); every other topic is created through Kafka's CreateTopics request.
    static let precreated: Set<String> = Set(
        (ProcessInfo.processInfo.environment["INTEGRATION_PRECREATED_TOPICS"] ?? "").split(separator: " ").map(String.init)
    )

    /// The client that creates topics on the named cluster.
    static var admin: KafkaTestCluster { .shared }

    /// The topic `it-<run>-<suffix>`, created with `partitions` partitions unless `integration/run` already did.
    /// - Parameters:
    ///   - suffix: The topic's name within this run.
    ///   - partitions: How many partitions it needs (the precreated ones have 4).
    static func topic(_ suffix: String, partitions: Int = 4) async throws -> String {
        let name = topicName(suffix)
        if !precreated.contains(suffix) { try await admin.createTopic(name, partitions: partitions) }
        return name
    }

    /// The name `it-<run>-<suffix>` of this run's topic `suffix`.
    static func topicName(_ suffix: String) -> String { "it-\(runID)-\(suffix)" }

    /// A consumer-group name unique to this run.
    /// - Parameter suffix: The group's name within this run.
    static func group(_ suffix: String) -> String { "it-\(runID)-\(suffix)-\(counter.add(1, ordering: .relaxed).newValue)" }

    private static let counter = Atomic<Int>(0)
}

/// A producer configuration for `servers` (the shared broker by default).
func producerConfiguration(
    _ servers: [String] = Integration.bootstrapServerList,
    properties: [String: String] = [:]
) -> KafkaProducerConfiguration {
    KafkaProducerConfiguration(bootstrapServers: servers, clientID: "integration", linger: .milliseconds(1), properties: properties)
}

/// A consumer configuration for `servers` (the shared broker by default), with quick group joins.
func consumerConfiguration(
    _ servers: [String] = Integration.bootstrapServerList,
    group: String,
    topics: [String],
    commitMode: KafkaConsumerConfiguration.CommitMode = .afterHandled(interval: .milliseconds(100)),
    properties: [String: String] = [:]
) -> KafkaConsumerConfiguration {
    .forTests(bootstrapServers: servers, group: group, topics: topics, commitMode: commitMode, properties: properties)
}

/// The span named `name`, or a test failure listing the spans there are.
func span(_ tracer: W3CRecordingTracer, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RecordedSpan {
    try #require(tracer.span(named: name), "no span named '\(name)' among \(tracer.finishedSpans.map(\.operationName))", sourceLocation: sourceLocation)
}

/// State shared between tasks, under a lock (TracedKafkaTesting's `LockedValue`, as in the unit tests).
typealias Shared = LockedValue

/// A child process's outcome.
struct ProcessOutput: Sendable {
    /// How it ended.
    var status: ChildProcess.Termination
    /// Everything it wrote to stdout.
    var stdout: String
    /// Everything it wrote to stderr.
    var stderr: String
}

/// Runs a program to completion off the cooperative pool and returns its output.
/// - Parameters:
///   - path: The executable.
///   - arguments: Its arguments.
/// - Throws: When it cannot be started.
func runProcess(_ path: String, _ arguments: [String]) async throws -> ProcessOutput {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                // ChildProcess (posix_spawn), not Foundation's Process, whose run() can crash the test process on Linux.
                // stdin is /dev/null.
                let process = try ChildProcess(path, arguments, standardOutput: .pipe, standardError: .pipe)
                let out = process.standardOutput!, err = process.standardError!
                // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
                let errData = Shared([UInt8]())
                let errReader = DispatchGroup()
                errReader.enter()
                DispatchQueue.global().async {
                    let data = err.readToEnd()
                    errData.withLock { $0 = data }
                    errReader.leave()
                }
                let outData = out.readToEnd()
                errReader.wait()
                let status = process.waitUntilExit()
                continuation.resume(returning: ProcessOutput(
                    status: status,
                    stdout: String(decoding: outData, as: UTF8.self),
                    stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self)
                ))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// An environment variable `integration/run` sets, or a test failure saying so.
func requiredEnvironment(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try #require(
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 },
        "\(name) is not set: run the suite through integration/run", sourceLocation: sourceLocation
    )
}
