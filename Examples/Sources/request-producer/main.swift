// request-producer: a service that handles (simulated) HTTP requests and publishes an event to Kafka inside each
// request's span, so the Kafka send is part of the request's trace.
//
//   swift run request-producer                      # 5 requests on an embedded broker, then exits
//   swift run request-producer --requests 0         # one request a second until Ctrl-C
//
//   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 swift run request-producer
//
// Each request is one trace:
//
//   handle request          (SERVER, service.name=request-producer)
//   └─ send orders          (PRODUCER, TracedKafka; its context travels in the record's `traceparent` header)
//
// Run downstream-consumer against the same broker and the trace continues there.
import ExampleSupport
import Foundation
import Logging
import ServiceLifecycle
import TracedKafka
import Tracing

/// The command line's help text.
let usage = """
    usage: request-producer [--requests N] [--interval SECONDS]
      --requests N          requests to handle before exiting (default 5; 0: until SIGINT/SIGTERM)
      --interval SECONDS    time between requests (default 1)
    environment: KAFKA_BOOTSTRAP_SERVERS (default: an embedded broker), OTEL_EXPORTER_OTLP_ENDPOINT (default: no export)
    """

/// The HTTP side of the service: a `POST /checkout`. Each request is handled inside a SERVER span, and the Kafka
/// send inside it becomes that span's child.
struct CheckoutEndpoint: Sendable {
    /// The topic the requests publish to; downstream-consumer reads it.
    static let topic = "orders"

    /// The service's one producer, shared by every request.
    let producer: KafkaProducer
    /// Where the endpoint logs; each line carries the request's trace_id and span_id.
    let logger: Logger

    /// One request: what an HTTP route handler in Hummingbird or Vapor would do (their tracing middleware would
    /// start the server span for you; here it is started by hand).
    func handleRequest(number: Int) async throws {
        let customer = "customer-\(Int.random(in: 1...20))"
        try await withSpan("handle request", ofKind: .server) { span in
            span.attributes["http.request.method"] = "POST"
            span.attributes["http.route"] = "/checkout"
            logger.info("checkout", metadata: ["request": "\(number)", "customer": "\(customer)"])

            // The send span is a child of `handle request`: TracedKafka starts it from the current context, and
            // writes its traceparent into the record's headers.
            let report = try await producer.send(KafkaProducerRecord(
                topic: Self.topic,
                key: customer,
                value: #"{"request":\#(number),"customer":"\#(customer)","item":"espresso"}"#
            ))
            logger.info("order published", metadata: ["partition": "\(report.partition)", "offset": "\(report.offset)"])
            span.attributes["http.response.status_code"] = 202
        }
    }
}

/// Runs the service until its requests are handled or SIGINT/SIGTERM.
func run() async throws {
    let options = CommandLineOptions(options: ["requests", "interval"], usage: usage)
    let requests = options.int("requests", default: 5)
    let interval = options.seconds("interval", default: .seconds(1))

    // Tracing and logging first: loggers made before the bootstrap would not carry trace ids.
    let observability = try Observability.bootstrap(serviceName: "request-producer")
    let logger = Logger(label: "request-producer")

    let broker = try ExampleBroker.fromEnvironment()
    logger.info("kafka: \(broker)")
    try await broker.createTopics([CheckoutEndpoint.topic])

    let producer = try KafkaProducer(
        configuration: .init(
            bootstrapServers: broker.bootstrapServers,
            clientID: "request-producer",
            linger: .milliseconds(5)
        ),
        logger: logger
    )
    let endpoint = CheckoutEndpoint(producer: producer, logger: logger)
    let simulated = SimulatedRequests(count: requests == 0 ? nil : requests, every: interval, logger: logger) { number in
        try await endpoint.handleRequest(number: number)
    }

    // A group shuts its services down in reverse order: the endpoint stops taking requests, then the producer delivers
    // what is queued, then swift-otel exports the last spans. When the endpoint is done, the whole group shuts down.
    let group = ServiceGroup(
        configuration: .init(
            services: [
                .init(service: observability),
                .init(service: producer),
                .init(service: simulated, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    try await group.run()
    broker.shutdown()
}

do {
    try await run()
} catch {
    FileHandle.standardError.write(Data("request-producer: \(error)\n".utf8))
    exit(1)
}
