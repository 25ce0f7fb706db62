import Foundation
import Testing
import Tracing
import TracedKafka
import TracedKafkaTesting

/// A traced producer on the backend (the tracer comes from `withTracer` unless one is given).
func tracedProducer(
    _ backend: TestBackend = .librdkafka,
    tracing: KafkaTracingConfiguration = .enabled,
    clientID: String? = "checkout"
) throws -> KafkaProducer {
    var configuration = producerConfiguration(backend)
    configuration.clientID = clientID
    configuration.tracing = tracing
    return try KafkaProducer(configuration: configuration)
}

/// A traced consumer on the backend, in a new group.
func tracedConsumer(
    _ backend: TestBackend = .librdkafka,
    topics: [String],
    group: String = uniqueName("g"),
    tracing: KafkaTracingConfiguration = .enabled,
    handlerFailure: KafkaConsumerConfiguration.HandlerFailurePolicy = .stop
) throws -> KafkaConsumer {
    var configuration = consumerConfiguration(backend, group: group, topics: topics)
    configuration.tracing = tracing
    configuration.handlerFailure = handlerFailure
    return try KafkaConsumer(configuration: configuration)
}

/// The process span of each handled message must be one the tracer recorded.
func span(_ tracer: W3CRecordingTracer, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RecordedSpan {
    try #require(tracer.span(named: name), "no span named '\(name)' among \(tracer.finishedSpans.map(\.operationName))", sourceLocation: sourceLocation)
}

/// A new topic on the shared cluster, with a name no other test uses.
func newTopic(_ prefix: String, partitions: Int = 1) async throws -> String {
    try await TestBackend.librdkafka.newTopic(prefix, partitions: partitions)
}

/// Sends records with a producer traced by the ambient tracer, then shuts it down.
func sendTraced(
    _ records: KafkaProducerRecord...,
    on backend: TestBackend = .librdkafka,
    tracing: KafkaTracingConfiguration = .enabled
) async throws {
    let producer = try tracedProducer(backend, tracing: tracing)
    try await withRunning(producer) { producer in
        for record in records { _ = try await producer.send(record) }
    }
}
