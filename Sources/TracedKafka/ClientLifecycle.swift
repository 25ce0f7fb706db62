import Synchronization

/// The run/shutdown state machine shared by ``KafkaProducer`` and ``KafkaConsumer``.
///
/// Mutating methods return what the caller must do; the caller does it outside the lock.
struct ClientLifecycle: ~Copyable {
    private enum State {
        /// Created; `run()` not called yet.
        case idle
        /// `run()` is waiting for a shutdown signal (the continuation, once it is parked).
        case running(CheckedContinuation<Void, Never>?)
        /// Shutdown was asked for; the client takes no new work.
        case stopping(ranBefore: Bool)
        /// Resources are freed.
        case finished
    }

    private var state = State.idle

    /// Whether the client still takes new work.
    var acceptsWork: Bool {
        switch state {
        case .idle, .running: return true
        case .stopping, .finished: return false
        }
    }

    enum RunAction {
        /// Park until shutdown is asked for, then shut down.
        case waitForShutdown
        /// Shutdown was asked for before `run()`: shut down now.
        case shutDownNow
    }

    /// `run()` begins.
    /// - Throws: ``KafkaError/Code/alreadyRunning`` on a second call.
    mutating func run() throws -> RunAction {
        switch state {
        case .idle:
            state = .running(nil)
            return .waitForShutdown
        case .stopping(ranBefore: false):
            state = .stopping(ranBefore: true)
            return .shutDownNow
        case .running, .stopping(ranBefore: true), .finished:
            throw KafkaError(code: .alreadyRunning, reason: "run() was already called on this client")
        }
    }

    /// `run()` parks its continuation. Returns `false` when shutdown was already asked for (resume at once).
    mutating func park(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard case .running(nil) = state else { return false }
        state = .running(continuation)
        return true
    }

    enum ShutdownAction {
        /// Nothing to do: shutdown is under way or over.
        case none
        /// Wake the parked `run()`.
        case resume(CheckedContinuation<Void, Never>)
        /// `run()` is about to park; it will see the new state.
        case runWillNotice
        /// `run()` was never called: the caller frees resources itself.
        case shutDownWithoutRun
    }

    /// Shutdown is asked for.
    mutating func triggerShutdown() -> ShutdownAction {
        switch state {
        case .idle:
            state = .stopping(ranBefore: false)
            return .shutDownWithoutRun
        case .running(let continuation):
            state = .stopping(ranBefore: true)
            return continuation.map { .resume($0) } ?? .runWillNotice
        case .stopping, .finished:
            return .none
        }
    }

    /// Resources are freed.
    mutating func finish() { state = .finished }
}

extension Mutex where Value == ClientLifecycle {
    /// Parks the caller until shutdown is asked for (graceful shutdown, ``trigger()``, or task cancellation).
    func waitForShutdown(trigger: @Sendable @escaping () -> Void) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !withLock({ $0.park(continuation) }) { continuation.resume() }
            }
        } onCancel: {
            trigger()
        }
    }
}
