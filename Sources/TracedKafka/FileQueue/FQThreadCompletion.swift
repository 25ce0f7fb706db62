import Synchronization

/// Lets tasks await the end of a file-queue worker thread without blocking a thread of the cooperative pool.
final class FQThreadCompletion: Sendable {
    private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Called by the thread as its last act.
    func markDone() {
        let waiters = state.withLock { state in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the thread is done. Any number of tasks may wait (a shutdown can race with a second one).
    func wait() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
