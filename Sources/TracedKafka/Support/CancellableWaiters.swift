/// Tasks parked in a state under a lock until something happens (room made in the backend's queue or in the events
/// stream), each found by its id so that its task's cancellation can take it out. The producer's state machine holds
/// its senders waiting for room in one; its caller resumes the continuations handed out, outside the lock.
struct CancellableWaiters {
    private var parked: [(id: UInt64, continuation: UnsafeContinuation<Void, Never>)] = []
    private var lastID: UInt64 = 0

    /// How many tasks wait.
    var count: Int { parked.count }

    /// An id for a task about to park, read before it parks so that its cancellation can find it.
    mutating func makeID() -> UInt64 {
        lastID += 1
        return lastID
    }

    /// Parks the task with id `id`.
    mutating func park(_ id: UInt64, _ continuation: UnsafeContinuation<Void, Never>) {
        parked.append((id, continuation))
    }

    /// The task `id`, taken out because it was cancelled; `nil` when it was taken out already (or never parked).
    mutating func remove(_ id: UInt64) -> UnsafeContinuation<Void, Never>? {
        guard let index = parked.firstIndex(where: { $0.id == id }) else { return nil }
        return parked.remove(at: index).continuation
    }

    /// Every parked task, taken out.
    mutating func takeAll() -> [UnsafeContinuation<Void, Never>] {
        guard !parked.isEmpty else { return [] }
        defer { parked = [] }
        return parked.map(\.continuation)
    }
}
