#if TRACEDKAFKA_TSAN
import Glibc

/// Under ThreadSanitizer only (`scripts/tsan` builds with `-DTRACEDKAFKA_TSAN`): the library's `Mutex`, with the
/// standard library's API, on a `pthread_mutex_t`.
///
/// Swift 6.3's `Synchronization.Mutex` locks with a futex that ThreadSanitizer cannot see on Linux, so every state
/// guarded by it looks unguarded and each concurrent access is reported as a race (two threads incrementing one
/// counter under it are enough). ThreadSanitizer intercepts `pthread_mutex_lock`, so with this lock it checks that the
/// state machines' state is touched under their lock, and nothing else. The lock and the value live in memory of
/// their own, outside any Swift variable, so that the sanitizer's access checks see only the value's own uses.
/// Release builds and the ordinary test run use `Synchronization.Mutex`.
struct Mutex<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    init(_ initialValue: consuming sending Value) {
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value.pointee)
    }
}
#endif
