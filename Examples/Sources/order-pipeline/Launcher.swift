import ExampleSupport
import Foundation
import Logging
import ServiceLifecycle

/// `order-pipeline` without a role: the whole pipeline on one machine. It hosts the broker (an embedded one, unless
/// `KAFKA_BOOTSTRAP_SERVERS` names one), creates the topics, and runs each service as its own process — its own
/// swift-otel bootstrap, its own `service.name` — until SIGINT/SIGTERM, which it passes on to them.
enum Launcher {
    /// The roles as the launcher's service group lists them (they start together); they are stopped the other way
    /// round, orders-api first, so no order is placed after payments has stopped.
    static let roles = [Notifications.serviceName, Payments.serviceName, OrdersAPI.serviceName]

    /// Runs the three services as child processes until SIGINT/SIGTERM.
    /// - Parameter roleArguments: Arguments passed on to orders-api (`--orders`, `--interval`).
    /// - Throws: When the broker cannot start, a topic cannot be created, or a child fails.
    static func run(roleArguments: [String]) async throws {
        // The launcher is not a traced service: plain logs to standard error.
        LoggingSystem.bootstrap(StreamLogHandler.standardError(label:))
        let logger = Logger(label: "order-pipeline")
        guard let executable = Bundle.main.executableURL else {
            throw ChildProcessService.Failure(description: "cannot find this program's own executable to start the services")
        }

        let broker = try ExampleBroker.fromEnvironment()
        try await broker.createTopics(Topic.all)
        logger.info("kafka: \(broker)")

        var environment = ProcessInfo.processInfo.environment
        environment["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrapServers.joined(separator: ",")
        let children = roles.map { role in
            ChildProcessService(
                name: role,
                executable: executable,
                arguments: [role] + (role == OrdersAPI.serviceName ? roleArguments : []),
                environment: environment,
                logger: logger
            )
        }
        let group = ServiceGroup(
            configuration: .init(
                services: children.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        broker.shutdown()
        logger.info("all services stopped")
    }
}
