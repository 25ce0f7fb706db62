import Foundation

/// A value shared between the tasks and threads of a test, under a lock.
///
/// ```swift
/// import TracedKafka
/// import TracedKafkaTesting
///
/// func values(handledBy consumer: KafkaConsumer) async throws -> [String] {
///     let seen = LockedValue<[String]>([])
///     try await consumer.run { message in seen.withLock { $0.append(message.valueString ?? "") } }
///     return seen.withLock { $0 }
/// }
/// ```
///
/// The lock is an `NSLock`, a `pthread_mutex_t`, which ThreadSanitizer sees: on Linux it cannot see the futex under
/// `Synchronization.Mutex`, and reports every access guarded by one as a race. The recording tracer keeps its list
/// of ended spans in it for the same reason. Making one allocates (the lock is an object of its own).
public final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    /// - Parameter value: The value to start with.
    public init(_ value: Value) { self.value = value }

    /// Runs `body` on the value with the lock held.
    /// - Parameter body: Reads or changes the value; it must not call back into this object.
    /// - Returns: What `body` returns.
    public func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.withLock { body(&value) }
    }
}
