#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lets a consumer's fetch thread sleep until a watched directory changes (inotify on Linux), until it is woken
/// (``wake()``), or until a timeout — so new records are seen within milliseconds without busy polling.
/// Where inotify is missing, ``wait(timeout:)`` simply sleeps for the timeout, capped at 20 ms.
final class FQChangeMonitor: @unchecked Sendable {
    private let pipeRead: Int32
    private let pipeWrite: Int32
    private let inotify: Int32
    // Touched by the fetch thread only.
    private var watched: Set<String> = []
    private var directoryOf: [Int32: String] = [:]

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw FQFile.error("Cannot create a pipe") }
        pipeRead = fds[0]
        pipeWrite = fds[1]
        _ = fcntl(pipeRead, F_SETFL, O_NONBLOCK)
        _ = fcntl(pipeWrite, F_SETFL, O_NONBLOCK)
        #if os(Linux)
        inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        #else
        inotify = -1
        #endif
    }

    deinit {
        close(pipeRead)
        close(pipeWrite)
        if inotify >= 0 { close(inotify) }
    }

    /// Watches a directory for files created, written, moved or deleted in it. Fine to call again for the same one;
    /// returns `false` when it can't be watched (it does not exist yet).
    @discardableResult
    func watch(_ directory: String) -> Bool {
        #if os(Linux)
        if watched.contains(directory) { return true }
        guard inotify >= 0 else { return false }
        let mask = UInt32(IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM)
        let wd = inotify_add_watch(inotify, directory, mask)
        guard wd >= 0 else { return false }
        watched.insert(directory)
        directoryOf[wd] = directory
        return true
        #else
        return false
        #endif
    }

    /// Wakes a thread in ``wait(timeout:)``. Callable from any thread.
    func wake() {
        var byte: UInt8 = 1
        _ = write(pipeWrite, &byte, 1)
    }

    /// Sleeps until a watched directory changes, ``wake()`` is called, or `timeout` passes.
    /// - Returns: The watched directories that changed.
    func wait(timeout: Duration) -> Set<String> {
        var fds = [pollfd(fd: pipeRead, events: Int16(POLLIN), revents: 0)]
        if inotify >= 0 { fds.append(pollfd(fd: inotify, events: Int16(POLLIN), revents: 0)) }
        let milliseconds = Int32(clamping: inotify >= 0 ? timeout.milliseconds : min(20, timeout.milliseconds))
        _ = poll(&fds, nfds_t(fds.count), milliseconds)
        var drain = [UInt8](repeating: 0, count: 4096)
        while read(pipeRead, &drain, drain.count) > 0 {}
        var changed: Set<String> = []
        guard inotify >= 0 else { return changed }
        while true {
            let count = read(inotify, &drain, drain.count)
            guard count > 0 else { break }
            // struct inotify_event: wd, mask, cookie, len (Int32/UInt32 each), then `len` bytes of name.
            var index = 0
            while index + 16 <= count {
                let wd = drain.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index, as: Int32.self) }
                let length = drain.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index + 12, as: UInt32.self) }
                if let directory = directoryOf[wd] { changed.insert(directory) }
                index += 16 + Int(length)
            }
        }
        return changed
    }
}
