#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import TracedKafkaTesting

/// `ChildProcess`, the `posix_spawn` helper every test's child process starts through.
@Suite("ChildProcess")
struct ChildProcessTests {
    @Test("stdout line by line, then the unterminated rest; stderr to its own pipe; the exit status")
    func outputAndStatus() throws {
        let child = try ChildProcess(
            "/bin/sh", ["-c", "echo one; echo two; echo oops >&2; printf tail; exit 3"],
            standardOutput: .pipe, standardError: .pipe
        )
        let out = try #require(child.standardOutput), err = try #require(child.standardError)
        #expect(out.readLine() == "one")
        #expect(out.readLine() == "two")
        #expect(out.readLine() == nil)
        #expect(out.readStringToEnd() == "tail")
        #expect(out.readToEnd() == [])
        #expect(err.readStringToEnd() == "oops\n")
        #expect(child.waitUntilExit() == .exited(3))
        #expect(child.waitUntilExit() == .exited(3))
    }

    @Test("A child ended by a signal reports the signal's number; kill after the wait does nothing")
    func killed() throws {
        let child = try ChildProcess("/bin/sh", ["-c", "echo ready; exec sleep 60"], standardOutput: .pipe)
        #expect(child.standardOutput?.readLine() == "ready")
        #expect(child.standardError == nil)
        child.kill(SIGKILL)
        #expect(child.waitUntilExit() == .signalled(SIGKILL))
        child.kill(SIGTERM)
        #expect(child.standardOutput?.readLine() == nil)
    }

    @Test("The child has only stdin (/dev/null), stdout and stderr of this process's descriptors, and no blocked signal")
    func cleanChild() throws {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)  // not close-on-exec: the child must not get it all the same
        defer { for fd in fds { close(fd) } }
        // The shell's descriptors, listed while it waits for `ls`.
        let shell = try ChildProcess("/bin/sh", ["-c", "ls /proc/$$/fd; readlink /proc/$$/fd/0"], standardOutput: .pipe)
        let lines = shell.standardOutput?.readStringToEnd().split(separator: "\n").map(String.init) ?? []
        #expect(shell.waitUntilExit() == .exited(0))
        #expect(lines == ["0", "1", "2", "/dev/null"])
        // The mask `grep` starts with (`exec`: the shell blocks signals around a fork of its own).
        let grep = try ChildProcess("/bin/sh", ["-c", "exec grep SigBlk /proc/self/status"], standardOutput: .pipe)
        #expect(grep.standardOutput?.readStringToEnd() == "SigBlk:\t0000000000000000\n")
        #expect(grep.waitUntilExit() == .exited(0))
    }

    @Test("Exit status and signal stay apart: exit 9 is exited(9), a kill -9 is signalled(9), whoever sends it")
    func exitedOrSignalled() throws {
        let exiting = try ChildProcess("/bin/sh", ["-c", "exit 9"])
        #expect(exiting.waitUntilExit() == .exited(9))
        let selfKilled = try ChildProcess("/bin/sh", ["-c", "kill -9 $$"])
        #expect(selfKilled.waitUntilExit() == .signalled(SIGKILL))
        let terminated = try ChildProcess("/bin/sh", ["-c", "kill -TERM $$"])
        #expect(terminated.waitUntilExit() == .signalled(SIGTERM))
        #expect("\(ChildProcess.Termination.exited(3))" == "exit status 3")
        #expect("\(ChildProcess.Termination.signalled(9))" == "signal 9")
    }

    @Test("A given environment is the child's whole environment; none given, the child has this process's")
    func environment() throws {
        let given = try ChildProcess("/usr/bin/env", environment: ["GREETING": "hello world", "EMPTY": ""], standardOutput: .pipe)
        let lines = given.standardOutput?.readStringToEnd().split(separator: "\n").map(String.init) ?? []
        #expect(given.waitUntilExit() == .exited(0))
        #expect(lines.sorted() == ["EMPTY=", "GREETING=hello world"])

        let path = try #require(getenv("PATH").map { String(cString: $0) }, "this test process has no PATH")
        let inherited = try ChildProcess("/bin/sh", ["-c", "printf %s \"$PATH\""], standardOutput: .pipe)
        #expect(inherited.standardOutput?.readStringToEnd() == path)
        #expect(inherited.waitUntilExit() == .exited(0))
    }

    @Test(
        "Inherited stdout or stderr is this process's own (the same open file), not captured; the status arrives",
        arguments: [STDOUT_FILENO, STDERR_FILENO]
    )
    func inheritedOutput(fd: Int32) throws {
        let other = fd == STDOUT_FILENO ? STDERR_FILENO : STDOUT_FILENO
        // What the shell's descriptor `fd` is, written to the other one, a pipe here. (Read before the redirection:
        // the shell may run its last command in its own process, `$$`, with that redirection applied.)
        let child = try ChildProcess(
            "/bin/sh", ["-c", "link=$(readlink /proc/$$/fd/\(fd)); echo \"$link\" >&\(other); exit 4"],
            standardOutput: fd == STDOUT_FILENO ? .inherited : .pipe,
            standardError: fd == STDERR_FILENO ? .inherited : .pipe
        )
        let (inherited, captured) = fd == STDOUT_FILENO
            ? (child.standardOutput, child.standardError) : (child.standardError, child.standardOutput)
        #expect(inherited == nil)
        let reader = try #require(captured)
        let own = try ownDescriptor(fd)
        #expect(reader.readStringToEnd() == "\(own)\n")
        #expect(child.waitUntilExit() == .exited(4))
    }

    /// What this process's descriptor `fd` is open on, as `/proc` names it (`pipe:[…]`, `/dev/pts/0`, a path).
    private func ownDescriptor(_ fd: Int32) throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count)
        try #require(count > 0, "cannot read /proc/self/fd/\(fd)")
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test("A program that cannot start throws")
    func missingExecutable() {
        #expect(throws: ChildProcess.SpawnError.self) { try ChildProcess("/nonexistent/program", standardOutput: .pipe) }
    }
}
