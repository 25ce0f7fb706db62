// order-pipeline: three services that hand an order on through Kafka, each its own process with its own
// swift-otel bootstrap and service.name, all in one trace:
//
//   orders-api ──orders.placed──▶ payments ──payments.captured──▶ notifications
//
//   POST /orders                          (SERVER,   orders-api)
//   └─ send orders.placed                 (PRODUCER, orders-api)
//      └─ process orders.placed           (CONSUMER, payments: child of the send span, linked to it)
//         ├─ POST /v1/charges             (CLIENT,   payments)
//         └─ send payments.captured       (PRODUCER, payments)
//            └─ process payments.captured (CONSUMER, notifications)
//               └─ send receipt email     (CLIENT,   notifications)
//
//   swift run order-pipeline                   # all three on an embedded broker, an order a second, until Ctrl-C
//   swift run order-pipeline --orders 3        # three orders; the services keep running until Ctrl-C
//   swift run order-pipeline payments          # one service, on KAFKA_BOOTSTRAP_SERVERS (as you'd deploy it)
//
// With OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 every service exports its spans and logs over OTLP/HTTP.
import ExampleSupport
import Foundation

/// The command line's help text.
let usage = """
    usage: order-pipeline [orders-api | payments | notifications] [--orders N] [--interval SECONDS]
      (no role)             run all three services as child processes, sharing one broker, until SIGINT/SIGTERM
      orders-api            place orders (--orders N: stop after N, default no limit; --interval: default 1 s)
      payments              charge each placed order and publish the payment
      notifications         email a receipt for each payment
    environment:
      KAFKA_BOOTSTRAP_SERVERS       the broker (default: an embedded one; a single role then talks to nobody)
      OTEL_EXPORTER_OTLP_ENDPOINT   export spans and logs over OTLP/HTTP, e.g. http://localhost:4318
    """

/// The command line.
let options = CommandLineOptions(options: ["orders", "interval"], usage: usage)
/// `--orders`: how many orders orders-api places; 0 for no limit.
let orders = options.int("orders", default: 0)
/// `--interval`: the time between two orders.
let interval = options.seconds("interval", default: .seconds(1))

do {
    switch options.positional {
    case []:
        // Every option is orders-api's: pass them on as given.
        try await Launcher.run(roleArguments: Array(CommandLine.arguments.dropFirst()))
    case [OrdersAPI.serviceName]:
        try await OrdersAPI.run(orders: orders == 0 ? nil : orders, interval: interval)
    case [Payments.serviceName]:
        try await Payments.run()
    case [Notifications.serviceName]:
        try await Notifications.run()
    default:
        options.fail("unknown role \(options.positional.joined(separator: " "))")
    }
} catch {
    // A failed service (or launcher) says why and exits non-zero, rather than trapping on an error thrown from main.
    FileHandle.standardError.write(Data("order-pipeline \(options.positional.first ?? "launcher"): \(error)\n".utf8))
    exit(1)
}
