#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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
        let pid = try spawn()
        let (exits, exited) = AsyncStream.makeStream(of: Exit.self, bufferingPolicy: .bufferingNewest(1))
        // A thread of its own blocks until the child exits (not a task: it would hold a thread of the shared pool).
        Thread {
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result == -1 && errno == EINTR
            // No status to report when waitpid itself failed: the stream ends without one (an unknown status).
            if result == pid {
                // WIFSIGNALED / WTERMSIG / WEXITSTATUS, macros Swift does not import.
                let signal = status & 0x7F
                exited.yield(signal != 0 ? Exit(status: signal, bySignal: true) : Exit(status: (status >> 8) & 0xFF, bySignal: false))
            }
            exited.finish()
        }.start()
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

    /// Starts the child with `posix_spawn`: this program's stdin, stdout and stderr, none of its other file
    /// descriptors, a process group of its own, no blocked signal (whichever thread starts it: the threads that run
    /// tasks block SIGTERM, and a child inherits the mask) and no ignored one.
    ///
    /// Not Foundation's `Process`: on Linux its `run()` can crash the program that calls it (swift-corelibs-foundation
    /// up to Swift 6.3.1 reads past the end of `/proc/self/fd` entries; fixed by swiftlang/swift-corelibs-foundation
    /// pull request #5472).
    /// - Returns: The child's process ID.
    /// - Throws: ``Failure`` when it cannot start.
    private func spawn() throws -> pid_t {
        func check(_ call: String, _ result: Int32) throws {
            if result != 0 { throw Failure(description: "cannot start \(name): \(call): \(String(cString: strerror(result)))") }
        }
        let actions = UnsafeMutablePointer<posix_spawn_file_actions_t>.allocate(capacity: 1)
        let attributes = UnsafeMutablePointer<posix_spawnattr_t>.allocate(capacity: 1)
        defer {
            actions.deallocate()
            attributes.deallocate()
        }
        try check("posix_spawn_file_actions_init", posix_spawn_file_actions_init(actions))
        defer { posix_spawn_file_actions_destroy(actions) }
        try check("posix_spawnattr_init", posix_spawnattr_init(attributes))
        defer { posix_spawnattr_destroy(attributes) }
        #if canImport(Darwin)
        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_CLOEXEC_DEFAULT
        #else
        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        // glibc's posix_spawn_file_actions_addclosefrom_np (2.34), which its Swift module does not import.
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
        if let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") {
            try check("posix_spawn_file_actions_addclosefrom_np", unsafeBitCast(symbol, to: AddCloseFrom.self)(actions, 3))
        }
        #endif
        try check("posix_spawnattr_setflags", posix_spawnattr_setflags(attributes, Int16(flags)))
        try check("posix_spawnattr_setpgroup", posix_spawnattr_setpgroup(attributes, 0))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(attributes, &noSignals))
        // Every signal at its default action: this program ignores SIGTERM and SIGINT while it handles them itself.
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(attributes, &allSignals))

        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for string in argv + envp { free(string) } }
        var pid: pid_t = 0
        try check("posix_spawn", posix_spawn(&pid, executable.path, actions, attributes, argv, envp))
        return pid
    }
}
