import Logging
import ServiceLifecycle

/// The HTTP side of a service, simulated: calls `handle` with request numbers 1, 2, … every `interval`, until `count`
/// requests were handled or graceful shutdown starts. Put it into a `ServiceGroup` with
/// `successTerminationBehavior: .gracefullyShutdownGroup` to end the process after the last request.
public struct SimulatedRequests: Service {
    private let count: Int?
    private let interval: Duration
    private let logger: Logger
    private let handle: @Sendable (Int) async throws -> Void

    /// Creates the loop.
    /// - Parameters:
    ///   - count: Requests to handle; `nil` for no limit.
    ///   - interval: Time between requests.
    ///   - logger: Where the loop logs how many requests it handled.
    ///   - handle: Handles one request, given its number.
    public init(count: Int?, every interval: Duration, logger: Logger, handle: @escaping @Sendable (Int) async throws -> Void) {
        self.count = count
        self.interval = interval
        self.logger = logger
        self.handle = handle
    }

    /// Handles requests until the limit is reached or graceful shutdown starts.
    /// - Throws: What `handle` throws; the service group then shuts the process down.
    public func run() async throws {
        var handled = 0
        while handled < count ?? .max, await pause(interval) {
            handled += 1
            try await handle(handled)
        }
        logger.info("handled \(handled) requests")
    }
}
