// downstream-consumer: a service that consumes `orders` and, for each one, calls another service downstream.
//
//   swift run downstream-consumer       # on an embedded broker, which it seeds with 3 orders itself; until Ctrl-C
//
//   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 swift run downstream-consumer
//
// TracedKafka runs the handler inside a CONSUMER span that is a child of the producer's span (taken from the
// record's headers) and links to it; the span is the current context inside the handler, so the downstream call's
// span — and the headers that call sends on — continue the same trace:
//
//   handle request             (SERVER, request-producer)
//   └─ send orders             (PRODUCER, request-producer)
//      └─ process orders       (CONSUMER, downstream-consumer: automatic)
//         └─ GET /inventory    (CLIENT, downstream-consumer: the handler's own span)
import ExampleSupport
import Foundation
import Logging
import ServiceLifecycle
import TracedKafka
import Tracing

/// The command line's help text.
let usage = """
    usage: downstream-consumer [--seed N]
      --seed N    orders to send to the topic first, as an upstream service would (default: 3 on the embedded
                  broker, where nothing else sends; 0 with KAFKA_BOOTSTRAP_SERVERS)
    environment: KAFKA_BOOTSTRAP_SERVERS (default: an embedded broker), OTEL_EXPORTER_OTLP_ENDPOINT (default: no export)
    """

/// A client for the inventory service, simulated: it carries the trace on in its request headers, as an HTTP
/// client with tracing middleware would, and takes a few milliseconds.
struct InventoryClient: Sendable {
    /// Where the client logs.
    let logger: Logger

    /// Reserves one item, in a CLIENT span that is a child of whatever span is current (here: `process orders`).
    /// - Parameter item: The item to reserve.
    /// - Returns: How many are left.
    /// - Throws: `CancellationError` when the task is cancelled mid-call.
    func reserve(_ item: String) async throws -> Int {
        try await withSpan("GET /inventory/{item}", ofKind: .client) { span in
            span.attributes["http.request.method"] = "GET"
            span.attributes["server.address"] = "inventory.internal"
            span.attributes["url.template"] = "/inventory/{item}"

            // What an instrumented HTTP client does: write the current context into the outgoing headers.
            var headers: [String: String] = [:]
            let context = ServiceContext.current ?? .topLevel
            InstrumentationSystem.instrument.inject(context, into: &headers, using: HeaderInjector())
            logger.info("calling inventory", metadata: ["item": "\(item)", "traceparent": "\(headers["traceparent"] ?? "-")"])

            try await Task.sleep(for: .milliseconds(Int.random(in: 5...25)))
            span.attributes["http.response.status_code"] = 200
            return Int.random(in: 0...100)
        }
    }

    /// Writes trace headers into a dictionary of HTTP headers.
    private struct HeaderInjector: Injector {
        /// Sets one header.
        func inject(_ value: String, forKey key: String, into headers: inout [String: String]) {
            headers[key] = value
        }
    }
}

/// A stand-in for the upstream service when this example runs alone on its embedded broker: it sends a few orders,
/// each inside a request span of its own, then returns.
struct UpstreamSeeder: Service {
    /// The producer to send with.
    let producer: KafkaProducer
    /// The topic to send to.
    let topic: String
    /// How many orders.
    let count: Int

    /// Sends the orders and returns.
    /// - Throws: A failed send.
    func run() async throws {
        guard count > 0 else { return }
        for number in 1...count {
            try await withSpan("seed order", ofKind: .server) { _ in
                _ = try await producer.send(KafkaProducerRecord(
                    topic: topic,
                    key: "customer-\(number)",
                    value: #"{"request":\#(number),"customer":"customer-\#(number)","item":"espresso"}"#
                ))
            }
        }
    }
}

/// Runs the service until SIGINT/SIGTERM.
func run() async throws {
    let topic = "orders"
    let options = CommandLineOptions(options: ["seed"], usage: usage)

    // Tracing and logging first: loggers made before the bootstrap would not carry trace ids.
    let observability = try Observability.bootstrap(serviceName: "downstream-consumer")
    let logger = Logger(label: "downstream-consumer")

    let broker = try ExampleBroker.fromEnvironment()
    logger.info("kafka: \(broker)")
    try await broker.createTopics([topic])
    let seed = options.int("seed", default: broker.isEmbedded ? 3 : 0)

    let consumer = try KafkaConsumer(
        configuration: .init(
            bootstrapServers: broker.bootstrapServers,
            groupID: "downstream-consumer",
            topics: [topic],
            autoOffsetReset: .earliest,
            clientID: "downstream-consumer"
        ),
        logger: logger
    )
    let inventory = InventoryClient(logger: logger)

    // The handler runs inside `process orders`; every log line in it carries that span's trace_id and span_id.
    let handler = consumer.service { message in
        logger.info(
            "order received",
            metadata: [
                "key": "\(message.keyString ?? "-")",
                "partition": "\(message.partition)",
                "offset": "\(message.offset)",
            ]
        )
        let left = try await inventory.reserve("espresso")
        logger.info("stock reserved", metadata: ["left": "\(left)"])
    }

    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: observability), .init(service: handler)]
    if seed > 0 {
        let producer = try KafkaProducer(
            configuration: .init(bootstrapServers: broker.bootstrapServers, clientID: "upstream-seeder"),
            logger: logger
        )
        services.append(.init(service: producer))
        let seeder = UpstreamSeeder(producer: producer, topic: topic, count: seed)
        services.append(.init(service: seeder, successTerminationBehavior: .ignore))
        logger.info("seeding \(seed) orders; stop with Ctrl-C")
    }

    // Reverse order at shutdown: the consumer finishes the message in hand, commits and leaves its group; swift-otel,
    // first in the list, stops last and exports the final spans.
    let group = ServiceGroup(
        configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    )
    try await group.run()
    broker.shutdown()
}

do {
    try await run()
} catch {
    FileHandle.standardError.write(Data("downstream-consumer: \(error)\n".utf8))
    exit(1)
}
