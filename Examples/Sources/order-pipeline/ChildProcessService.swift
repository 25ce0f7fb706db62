import Foundation
import Logging
import ServiceLifecycle
import TracedKafkaTesting

/// One of the pipeline's services, run as a child process, as a `Service`: graceful shutdown of the launcher's group
/// becomes SIGTERM to the child, which then shuts down gracefully itself.
///
/// The child is a `ChildProcess` (`posix_spawn`; not Foundation's `Process`, whose `run()` can crash the program that
/// calls it on Linux): it writes to the launcher's own stdout and stderr, reads nothing (stdin is `/dev/null`), and
/// runs in a process group of its own, so a Ctrl-C at the terminal reaches the launcher only, which passes it on.
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

    /// The child process failed.
    struct Failure: Error, CustomStringConvertible {
        /// What failed and how.
        let description: String
    }

    /// Starts the child and waits for it; on graceful shutdown (or cancellation) sends it SIGTERM and waits for it
    /// to exit.
    /// - Throws: `ChildProcess.SpawnError` when the child cannot start; ``Failure`` when it exits with a status other
    ///   than 0 or by a signal.
    func run() async throws {
        let child = try ChildProcess(
            executable.path, arguments, environment: environment, standardOutput: .inherited, standardError: .inherited
        )
        let name = name, logger = logger
        logger.info("started \(name)", metadata: ["pid": "\(child.pid)"])

        let stop: @Sendable () -> Void = {
            logger.info("stopping \(name)", metadata: ["pid": "\(child.pid)"])
            child.kill(SIGTERM)
        }
        // SIGTERM on graceful shutdown and on cancellation alike; either way, wait for the child to be gone (the
        // continuation is resumed only by the child's end, never by cancellation).
        let termination = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    // A thread of its own blocks until the child exits (not a task: it would hold a thread of the
                    // shared pool).
                    Thread { continuation.resume(returning: child.waitUntilExit()) }.start()
                }
            } onCancel: {
                stop()
            }
        } onGracefulShutdown: {
            stop()
        }
        guard termination == .exited(0) else { throw Failure(description: "\(name) exited with \(termination)") }
        logger.info("\(name) exited", metadata: ["pid": "\(child.pid)"])
        // Done on its own: keep the group (and the other children) running until it shuts down.
        if !Task.isShuttingDownGracefully { try? await gracefulShutdown() }
    }
}
