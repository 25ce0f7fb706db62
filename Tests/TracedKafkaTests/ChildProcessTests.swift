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
        #expect(child.waitUntilExit() == 3)
        #expect(child.waitUntilExit() == 3)
    }

    @Test("A child ended by a signal reports the signal's number; kill after the wait does nothing")
    func killed() throws {
        let child = try ChildProcess("/bin/sh", ["-c", "echo ready; exec sleep 60"], standardOutput: .pipe)
        #expect(child.standardOutput?.readLine() == "ready")
        #expect(child.standardError == nil)
        child.kill(SIGKILL)
        #expect(child.waitUntilExit() == SIGKILL)
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
        #expect(shell.waitUntilExit() == 0)
        #expect(lines == ["0", "1", "2", "/dev/null"])
        // The mask `grep` starts with (`exec`: the shell blocks signals around a fork of its own).
        let grep = try ChildProcess("/bin/sh", ["-c", "exec grep SigBlk /proc/self/status"], standardOutput: .pipe)
        #expect(grep.standardOutput?.readStringToEnd() == "SigBlk:\t0000000000000000\n")
        #expect(grep.waitUntilExit() == 0)
    }

    @Test("A program that cannot start throws")
    func missingExecutable() {
        #expect(throws: ChildProcess.SpawnError.self) { try ChildProcess("/nonexistent/program", standardOutput: .pipe) }
    }
}
