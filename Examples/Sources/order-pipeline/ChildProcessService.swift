import Foundation
import Logging
import ServiceLifecycle

/// One of the pipeline's services, run as a child process, as a `Service`: graceful shutdown of the launcher's group
/// becomes SIGTERM to the child, which then shuts down gracefully itself.
///
/// The child exiting with status 0 on its own (orders-api after its last order) leaves the group running; any other
/// exit fails the group, which stops the other children.
struct ChildProcessService: Service, CustomStringConvertible {
    /// The child's name, for logs.
    let name: String
    /// The program to run.
    let executable: URL
    /// Its arguments.
    let arguments: [String]
    /// Its whole environment.
    let environment: [String: String]
    /// Where the launcher logs.
    let logger: Logger

    /// The child's name, for the service group's logs.
    var description: String { name }

    /// How the child ended.
    private struct Exit: Sendable, CustomStringConvertible {
        var status: Int32
        var bySignal: Bool
        var description: String { bySignal ? "signal \(status)" : "status \(status)" }
    }

    /// The child process failed.
    struct Failure: Error, CustomStringConvertible {
        /// What failed and how.
        let description: String
    }

    /// Starts the child and waits for it; on graceful shutdown (or cancellation) sends it SIGTERM and waits for it
    /// to exit.
    /// - Throws: When the child cannot start, or exits with a status other than 0 or by a signal.
    func run() async throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        let (exits, exited) = AsyncStream.makeStream(of: Exit.self, bufferingPolicy: .bufferingNewest(1))
        process.terminationHandler = { process in
            exited.yield(Exit(status: process.terminationStatus, bySignal: process.terminationReason == .uncaughtSignal))
            exited.finish()
        }
        try process.run()
        let pid = process.processIdentifier
        logger.info("started \(name)", metadata: ["pid": "\(pid)"])

        let stop: @Sendable () -> Void = {
            logger.info("stopping \(name)", metadata: ["pid": "\(pid)"])
            kill(pid, SIGTERM)
        }
        // SIGTERM on graceful shutdown and on cancellation alike; either way, wait for the child to be gone (in a
        // detached task, whose value a cancelled task still waits for).
        let exit = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await Task.detached { await exits.first { _ in true } }.value
            } onCancel: {
                stop()
            }
        } onGracefulShutdown: {
            stop()
        }
        guard let exit, !exit.bySignal, exit.status == 0 else {
            throw Failure(description: "\(name) exited with \(exit.map(\.description) ?? "an unknown status")")
        }
        logger.info("\(name) exited", metadata: ["pid": "\(pid)"])
        // Done on its own: keep the group (and the other children) running until it shuts down.
        if !Task.isShuttingDownGracefully { try? await gracefulShutdown() }
    }
}
