#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file descriptor with the few POSIX calls the file queue needs; closed when the object goes.
/// Not thread-safe: each object belongs to one thread at a time.
final class FQFile {
    let path: String
    let descriptor: Int32

    /// Opens a file for reading and writing, creating it when missing.
    /// - Throws: ``KafkaError/Code/fileQueue`` naming the path and the system's reason.
    init(creating path: String) throws {
        let fd = openDescriptor(path, O_RDWR | O_CREAT | O_CLOEXEC)
        guard fd >= 0 else { throw FQFile.error("Cannot open \(path)") }
        self.path = path
        self.descriptor = fd
    }

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Opens an existing file, or returns `nil` when it (or its directory) does not exist.
    static func open(_ path: String, writable: Bool) throws -> FQFile? {
        let fd = openDescriptor(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else { throw FQFile.error("Cannot open \(path)") }
        return FQFile(path: path, descriptor: fd)
    }

    deinit { close(descriptor) }

    var size: Int64 {
        get throws {
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw FQFile.error("Cannot stat \(path)") }
            return Int64(info.st_size)
        }
    }

    /// Whether the file was removed from its directory since it was opened (its topic was deleted).
    var isUnlinked: Bool {
        get throws {
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw FQFile.error("Cannot stat \(path)") }
            return info.st_nlink == 0
        }
    }

    /// Reads up to `count` bytes at `position`; fewer at the end of the file.
    func read(at position: Int64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(position) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw FQFile.error("Cannot read \(path)") }
                if n == 0 { break }
                done += n
            }
        }
        bytes.removeLast(count - done)
        return bytes
    }

    /// Writes all of `bytes` at `position`.
    func write(_ bytes: [UInt8], at position: Int64) throws {
        var done = 0
        try bytes.withUnsafeBytes { buffer in
            while done < buffer.count {
                let n = pwrite(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(position) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw FQFile.error("Cannot write \(path)") }
                done += n
            }
        }
    }

    func truncate(to size: Int64) throws {
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw FQFile.error("Cannot truncate \(path)") }
    }

    func sync() throws {
        guard fsync(descriptor) == 0 else { throw FQFile.error("Cannot fsync \(path)") }
    }

    /// Takes an advisory `flock` lock. Locks belong to this open file, so two objects on one path exclude each
    /// other even within a process; the kernel drops them when the process dies.
    /// - Returns: `false` when `wait` is false and another holder has a conflicting lock.
    @discardableResult
    func lock(exclusive: Bool, wait: Bool = true) throws -> Bool {
        let operation = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(descriptor, operation) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK && !wait { return false }
            throw FQFile.error("Cannot lock \(path)")
        }
        return true
    }

    func unlock() {
        _ = flock(descriptor, LOCK_UN)
    }

    /// Runs `body` holding the exclusive lock.
    func withExclusiveLock<T>(_ body: () throws -> T) throws -> T {
        try lock(exclusive: true)
        defer { unlock() }
        return try body()
    }

    /// Runs `body` holding the shared lock.
    func withSharedLock<T>(_ body: () throws -> T) throws -> T {
        try lock(exclusive: false)
        defer { unlock() }
        return try body()
    }

    /// A file-queue error naming what failed and the system's reason (`errno`).
    static func error(_ what: String) -> KafkaError {
        let reason = String(cString: strerror(errno))
        return KafkaError(code: .fileQueue, reason: "\(what): \(reason)")
    }

    /// Creates a directory and its parents; fine when it exists.
    static func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw error("Cannot create the directory \(current)")
            }
        }
    }

    /// Creates one directory whose parent exists; fine when it exists (then nothing is written).
    static func makeChildDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw error("Cannot create the directory \(path)") }
    }

    /// Writes a small file whole and atomically: a temporary file renamed over `path`.
    static func replace(_ path: String, with text: String, sync: Bool) throws {
        let temporary = try temporaryFile(beside: path, with: text, sync: sync)
        guard rename(temporary, path) == 0 else {
            let failure = error("Cannot replace \(path)")
            unlink(temporary)
            throw failure
        }
    }

    /// A new file beside `path` holding `text` (synced with `sync`); removed again when writing it fails.
    private static func temporaryFile(beside path: String, with text: String, sync: Bool) throws -> String {
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let file = try FQFile(creating: temporary)
            try file.write(Array(text.utf8), at: 0)
            if sync { try file.sync() }
        } catch {
            unlink(temporary)
            throw error
        }
        return temporary
    }

    /// Creates `path` holding `text` unless it exists; the first of several racing processes wins.
    /// - Returns: whether this call created it.
    @discardableResult
    static func createOnce(_ path: String, with text: String) throws -> Bool {
        let temporary = try temporaryFile(beside: path, with: text, sync: false)
        defer { unlink(temporary) }
        if link(temporary, path) == 0 { return true }
        guard errno == EEXIST else { throw error("Cannot create \(path)") }
        return false
    }

    /// The whole content of a small text file, or `nil` when it does not exist.
    static func text(at path: String) throws -> String? {
        guard let file = try FQFile.open(path, writable: false) else { return nil }
        let bytes = try file.read(at: 0, count: Int(max(0, try file.size)))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The names in a directory (without `.` and `..`), or `[]` when it does not exist.
    static func names(in path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// `open(2)`, outside the class whose own `open` would shadow it.
private func openDescriptor(_ path: String, _ flags: Int32) -> Int32 {
    open(path, flags, 0o644)
}
