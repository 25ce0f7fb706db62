import Foundation
import Synchronization

/// A dedicated thread for librdkafka's blocking poll calls, so they never occupy Swift's cooperative pool.
///
/// The body loops until ``shouldStop`` turns true; each poll call inside it must have a short timeout (it bounds
/// how long ``stopAndJoin()`` waits). librdkafka's poll returns as soon as an event arrives, so the timeout
/// bounds shutdown latency only, never delivery latency.
final class RDPollThread: Sendable {
    private let stopRequested = Atomic(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the thread.
    /// - Parameters:
    ///   - name: The thread's name, for debuggers.
    ///   - body: The poll loop; it receives this object to check ``shouldStop``.
    init(name: String, body: @escaping @Sendable (RDPollThread) -> Void) {
        let thread = Thread { [self] in
            body(self)
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Whether the loop should end.
    var shouldStop: Bool { stopRequested.load(ordering: .acquiring) }

    /// Asks the loop to end and waits until it has. Blocks: call it off the cooperative pool.
    func stopAndJoin() {
        stopRequested.store(true, ordering: .releasing)
        finished.wait()
        finished.signal()  // a second caller passes straight through
    }
}
