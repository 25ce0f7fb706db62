#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A child process started with `posix_spawn` directly, for tests and tools that run other programs: stdin reads
/// `/dev/null`; stdout and stderr each go to `/dev/null`, into a pipe this process reads, or to this process's own
/// stdout or stderr.
///
/// It exists because Foundation's `Process.run()` on Linux can crash the process that calls it: the
/// swift-corelibs-foundation of Swift 6.3.1 and earlier scans `/proc/self/fd` and copies a fixed 256 bytes of each
/// entry's `dirent.d_name`, reading past a short last entry, which now and then is the end of mapped memory (SIGSEGV,
/// "Bad pointer dereference" in `memcpy` inside `Process.run`). The fix is swiftlang/swift-corelibs-foundation pull
/// request #5472, in no released toolchain this package builds with; a crash in a test run loses the whole run, so
/// every child process a test starts goes through this type instead.
///
/// The child gets this process's environment (or the one it is given) and working directory, its own process group
/// (as `Process` gives it: a Ctrl-C at the terminal reaches this process only, which may pass it on with
/// ``kill(_:)``), an empty signal mask and every signal at its default action (whatever thread starts it), and no
/// file descriptor of this process other than its stdin, stdout and stderr. The pipes' write ends are closed here once
/// the child has started, so reading a pipe ends when the child (and any child of its own that kept the descriptor)
/// has exited.
///
/// ```swift
/// import TracedKafkaTesting
///
/// let cluster = try EmbeddedKafkaCluster()
/// let child = try ChildProcess("/usr/bin/kcat", ["-b", cluster.bootstrapServers, "-L"], standardOutput: .pipe)
/// while let line = child.standardOutput?.readLine() { print(line) }
/// switch child.waitUntilExit() {
/// case .exited(0): print("done")
/// case let termination: print("kcat ended with", termination)   // "exit status 1", "signal 9", …
/// }
/// ```
///
/// Wait for every child with ``waitUntilExit()``: until then it stays in the process table after it exits.
public final class ChildProcess: Sendable {
    /// Where the child's stdout or stderr goes.
    public enum Output: Sendable {
        /// Into a pipe this process reads through ``ChildProcess/standardOutput`` or ``ChildProcess/standardError``.
        case pipe
        /// To `/dev/null`.
        case nullDevice
        /// To this process's own stdout (for the child's stdout) or stderr (for its stderr), whatever that is: a
        /// terminal, a pipe, a file. Nothing is captured here.
        case inherited
    }

    /// How a child ended, as ``ChildProcess/waitUntilExit()`` reports it.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// It exited by itself (returned from `main`, called `exit`) with this exit status, 0 to 255.
        case exited(Int32)
        /// A signal ended it: the signal's number (`SIGKILL`, 9, for a child killed with ``ChildProcess/kill(_:)``).
        case signalled(Int32)
        /// Its status is lost: something else in this process reaped the child before ``ChildProcess/waitUntilExit()``
        /// could.
        case unknown

        /// "exit status 3", "signal 9" or "an unknown status".
        public var description: String {
            switch self {
            case .exited(let status): "exit status \(status)"
            case .signalled(let signal): "signal \(signal)"
            case .unknown: "an unknown status"
            }
        }
    }

    /// The child could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        /// The program that was to run.
        public let executable: String
        /// The call that failed (`pipe`, `posix_spawn`, …).
        public let call: String
        /// The `errno` value it failed with.
        public let code: Int32

        /// "Could not start …: call: reason".
        public var description: String {
            "Could not start \(executable): \(call): \(String(cString: strerror(code))) (errno \(code))"
        }
    }

    /// The reading end of a pipe from the child's stdout or stderr. Reads block until the child writes or the pipe
    /// ends (every process holding its write end has closed it, normally by exiting).
    ///
    /// Reads from several threads take turns. Read off Swift's cooperative thread pool (on a `Thread` of its own, or
    /// a `DispatchQueue`): the reads are blocking system calls. Read it to its end while the child runs, or a child that
    /// writes more than the pipe holds (64 KiB on Linux) blocks until it is read.
    public final class OutputPipe: Sendable {
        private let state: Mutex<PipeReader>

        init(fileDescriptor: Int32) { state = Mutex(PipeReader(fileDescriptor: fileDescriptor)) }

        deinit { state.withLock { $0.close() } }

        /// The next line, without its newline; `nil` at the end of the output.
        ///
        /// Only whole lines (ended by a newline) are returned: bytes after the last newline — a line cut short, as
        /// when the child was killed mid-write — are not, and ``readToEnd()`` returns them after this returned `nil`.
        /// Invalid UTF-8 is replaced by U+FFFD.
        /// - Returns: The line, or `nil` when the pipe has ended and no whole line is left.
        public func readLine() -> String? { state.withLock { $0.nextLine() } }

        /// Everything not read yet, up to the end of the output.
        /// - Returns: The bytes; empty when nothing is left.
        public func readToEnd() -> [UInt8] { state.withLock { $0.rest() } }

        /// Everything not read yet, up to the end of the output, as UTF-8 text (invalid UTF-8 replaced by U+FFFD).
        /// - Returns: The text; empty when nothing is left.
        public func readStringToEnd() -> String { String(decoding: readToEnd(), as: UTF8.self) }
    }

    /// The child's process ID.
    public let pid: pid_t
    /// The pipe from the child's stdout, when it was started with `standardOutput: .pipe`.
    public let standardOutput: OutputPipe?
    /// The pipe from the child's stderr, when it was started with `standardError: .pipe`.
    public let standardError: OutputPipe?
    /// Set once the child has been reaped: how it ended, as ``waitUntilExit()`` returns it. Signals are only sent
    /// under this lock while it is `nil`, so never to a process ID the system may have handed to another process.
    private let termination = Mutex<Termination?>(nil)

    /// Starts a program.
    /// - Parameters:
    ///   - executable: The program's path (not looked up in `PATH`); also the child's `argv[0]`.
    ///   - arguments: Its arguments, after `argv[0]`.
    ///   - environment: The child's whole environment, each key a variable's name (without `=`); `nil` for this
    ///     process's environment as it is when the child starts. To add to or change this process's, start from
    ///     `ProcessInfo.processInfo.environment`.
    ///   - standardOutput: Where its stdout goes; `.pipe` to read it from ``standardOutput``.
    ///   - standardError: Where its stderr goes; `.pipe` to read it from ``standardError``.
    /// - Throws: ``SpawnError`` when a pipe cannot be made or the program cannot be started (no such file, not
    ///   executable, …).
    public init(
        _ executable: String,
        _ arguments: [String] = [],
        environment: [String: String]? = nil,
        standardOutput: Output = .nullDevice,
        standardError: Output = .nullDevice
    ) throws {
        var outPipe: (read: Int32, write: Int32)?
        var errPipe: (read: Int32, write: Int32)?
        do {
            pid = try withDescriptorsLock {
                if standardOutput == .pipe { outPipe = try makePipe(for: executable) }
                if standardError == .pipe { errPipe = try makePipe(for: executable) }
                return try spawn(
                    executable, arguments, environment: environment,
                    stdout: Destination(standardOutput, pipe: outPipe?.write),
                    stderr: Destination(standardError, pipe: errPipe?.write)
                )
            }
        } catch {
            for fd in [outPipe?.read, outPipe?.write, errPipe?.read, errPipe?.write].compactMap({ $0 }) { _ = close(fd) }
            throw error
        }
        // The child has its copies: with these closed, a read ends when the child has gone.
        if let outPipe { _ = close(outPipe.write) }
        if let errPipe { _ = close(errPipe.write) }
        self.standardOutput = outPipe.map { OutputPipe(fileDescriptor: $0.read) }
        self.standardError = errPipe.map { OutputPipe(fileDescriptor: $0.read) }
    }

    /// Sends the child a signal; does nothing once ``waitUntilExit()`` has reaped it.
    /// - Parameter signal: The signal, `SIGKILL` unless told.
    public func kill(_ signal: Int32 = SIGKILL) {
        termination.withLock { termination in
            if termination == nil { _ = sendSignal(pid, signal) }
        }
    }

    /// Blocks the calling thread until the child has exited, and reaps it. Call it off Swift's cooperative thread
    /// pool when the child may run for long. Can be called again, from any thread: it then returns the same result.
    /// - Returns: ``Termination/exited(_:)`` with its exit status, or ``Termination/signalled(_:)`` with the signal
    ///   that ended it; ``Termination/unknown`` in the unexpected case that something else in this process reaped the
    ///   child first.
    public func waitUntilExit() -> Termination {
        if let termination = termination.withLock({ $0 }) { return termination }
        // Wait without reaping, so that the process ID stays the child's while `kill(_:)` may use it.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        return termination.withLock { termination in
            if let termination { return termination }
            var raw: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &raw, 0) } while result == -1 && errno == EINTR
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (they are macros). Without WUNTRACED
            // or WCONTINUED, waitpid reports only the child's end: an exit or a signal.
            let decoded: Termination = result == -1 ? .unknown : (raw & 0x7F) == 0 ? .exited((raw >> 8) & 0xFF) : .signalled(raw & 0x7F)
            termination = decoded
            return decoded
        }
    }
}

// MARK: - Reading a pipe

/// A pipe's reading end and what was read from it but not returned yet.
struct PipeReader: ~Copyable {
    /// -1 once the pipe has ended (and the descriptor is closed).
    private var fileDescriptor: Int32
    private var buffer: [UInt8] = []
    /// Where the bytes not returned yet begin in `buffer`.
    private var start = 0

    init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    mutating func nextLine() -> String? {
        var searchFrom = start
        while true {
            if let newline = buffer[searchFrom...].firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[start..<newline], as: UTF8.self)
                start = newline + 1
                return line
            }
            searchFrom = buffer.count
            let kept = start
            guard fill() else { return nil }
            searchFrom -= kept
        }
    }

    mutating func rest() -> [UInt8] {
        while fill() {}
        let rest = Array(buffer[start...])
        buffer = []
        start = 0
        return rest
    }

    /// Reads once more into the buffer, dropping the bytes already returned first.
    /// - Returns: `false` when the pipe has ended (end of file, or a read error, taken as the end).
    private mutating func fill() -> Bool {
        guard fileDescriptor >= 0 else { return false }
        if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        let fd = fileDescriptor
        let count = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65_536) { chunk -> Int in
            var count: Int
            repeat { count = read(fd, chunk.baseAddress, chunk.count) } while count == -1 && errno == EINTR
            if count > 0 { buffer.append(contentsOf: chunk[0..<count]) }
            return count
        }
        if count > 0 { return true }
        close()
        return false
    }

    mutating func close() {
        if fileDescriptor >= 0 {
            _ = closeDescriptor(fileDescriptor)
            fileDescriptor = -1
        }
    }
}

// MARK: - Spawning

/// Makes sure no child started here inherits a pipe end meant for another, between a pipe's making and its ends
/// turning close-on-exec, on a system where a child's other descriptors are not closed anyway.
private let descriptorsLock = Mutex<Void>(())

private func withDescriptorsLock(_ body: () throws -> pid_t) throws -> pid_t {
    #if os(Linux)
    if gnu.addCloseFrom != nil { return try body() }
    #endif
    return try descriptorsLock.withLock { _ in try body() }
}

/// A pipe whose two ends are close-on-exec (the child gets its end through `dup2`, which clears that).
private func makePipe(for executable: String) throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw ChildProcess.SpawnError(executable: executable, call: "pipe", code: errno) }
    for fd in fds where fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 {
        let code = errno
        _ = close(fds[0])
        _ = close(fds[1])
        throw ChildProcess.SpawnError(executable: executable, call: "fcntl", code: code)
    }
    return (fds[0], fds[1])
}

/// Where `spawn` sends the child's stdout or stderr.
private enum Destination {
    /// Into this descriptor (a pipe's write end).
    case descriptor(Int32)
    /// To `/dev/null`.
    case nullDevice
    /// This process's own descriptor of the same number.
    case inherited

    /// Where `output` goes; `pipe` is the write end made for it when it is `.pipe`.
    init(_ output: ChildProcess.Output, pipe: Int32?) {
        switch (output, pipe) {
        case (.pipe, let pipe?): self = .descriptor(pipe)
        case (.inherited, _): self = .inherited
        case (.nullDevice, _), (.pipe, nil): self = .nullDevice
        }
    }
}

/// Starts the child: stdin from `/dev/null`, stdout and stderr where told; the given environment, or this process's.
private func spawn(
    _ executable: String, _ arguments: [String], environment: [String: String]?,
    stdout: Destination, stderr: Destination
) throws -> pid_t {
    func check(_ call: String, _ result: Int32) throws {
        if result != 0 { throw ChildProcess.SpawnError(executable: executable, call: call, code: result) }
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

    try check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0))
    for (target, destination) in [(STDOUT_FILENO, stdout), (STDERR_FILENO, stderr)] {
        switch destination {
        case .descriptor(let source):
            try check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(actions, source, target))
        case .nullDevice:
            try check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(actions, target, "/dev/null", O_WRONLY, 0))
        case .inherited:
            // Kept as it is; on Darwin, POSIX_SPAWN_CLOEXEC_DEFAULT would close it unless named here.
            #if canImport(Darwin)
            try check("posix_spawn_file_actions_addinherit_np", posix_spawn_file_actions_addinherit_np(actions, target))
            #endif
        }
    }

    // Its own process group, as Foundation's Process gives it; a clean signal state whatever thread starts it
    // (a Dispatch worker blocks SIGTERM, SIGPIPE and others, and a blocked mask is inherited).
    // And none of this process's descriptors but 0, 1 and 2 (whoever opened them, close-on-exec or not).
    #if canImport(Darwin)
    let flags = Int32(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_CLOEXEC_DEFAULT)
    #else
    let flags = Int32(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    if let addCloseFrom = gnu.addCloseFrom {
        try check("posix_spawn_file_actions_addclosefrom_np", addCloseFrom(actions, 3))
    }
    #endif
    try check("posix_spawnattr_setpgroup", posix_spawnattr_setpgroup(attributes, 0))
    var signals = sigset_t()
    sigemptyset(&signals)
    try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(attributes, &signals))
    sigfillset(&signals)
    try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(attributes, &signals))
    try check("posix_spawnattr_setflags", posix_spawnattr_setflags(attributes, Int16(flags)))

    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { for string in argv + (envp ?? []) { free(string) } }
    var pid: pid_t = 0
    if let envp {
        try check("posix_spawn", posix_spawn(&pid, executable, actions, attributes, argv, envp))
    } else {
        #if canImport(Darwin)
        let inherited = _NSGetEnviron().pointee
        #else
        let inherited = environ
        #endif
        try check("posix_spawn", posix_spawn(&pid, executable, actions, attributes, argv, inherited))
    }
    return pid
}

private func sendSignal(_ pid: pid_t, _ signal: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.kill(pid, signal)
    #else
    Darwin.kill(pid, signal)
    #endif
}

private func closeDescriptor(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.close(fd)
    #else
    Darwin.close(fd)
    #endif
}

#if os(Linux)
/// A glibc function that its Swift module does not import (declared only with `_GNU_SOURCE`), looked up at run
/// time: `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34).
private struct GNUFunctions: Sendable {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    let addCloseFrom: AddCloseFrom?

    init() {
        let process = dlopen(nil, RTLD_NOW)
        addCloseFrom = dlsym(process, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    }
}

private let gnu = GNUFunctions()
#endif
