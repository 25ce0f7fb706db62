import Synchronization

/// The run/shutdown state machine shared by ``KafkaProducer`` and ``KafkaConsumer``.
///
/// Mutating methods return what the caller must do; the caller does it outside the lock. The parked `run()` is
/// taken out under the lock and resumed once.
struct ClientLifecycle: ~Copyable {
    private enum State {
        /// Created; `run()` not called yet.
        case idle
        /// `run()` is waiting for a shutdown signal (the continuation, once it is parked).
        case running(UnsafeContinuation<Void, Never>?)
        /// Shutdown was asked for; the client takes no new work.
        case stopping(ranBefore: Bool)
        /// Resources are freed.
        case finished
    }

    /// Whether the client still takes new work. Kept beside the state, so the check made once per record reads a
    /// flag instead of copying the state.
    private(set) var acceptsWork = true

    private var state = State.idle {
        didSet {
            switch state {
            case .idle, .running: acceptsWork = true
            case .stopping, .finished: acceptsWork = false
            }
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
    mutating func park(_ continuation: UnsafeContinuation<Void, Never>) -> Bool {
        guard case .running(nil) = state else { return false }
        state = .running(continuation)
        return true
    }

    enum ShutdownAction {
        /// Nothing to do: shutdown is under way or over.
        case none
        /// Wake the parked `run()`.
        case resume(UnsafeContinuation<Void, Never>)
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

import ServiceLifecycle

/// An owner of a ``ClientLifecycle`` under a lock: the producer's or the consumer's state machine.
protocol ClientLifecycleLocking: AnyObject, Sendable {
    /// Runs `body` on the lifecycle, under the owner's lock.
    func withLifecycle<R>(_ body: (inout ClientLifecycle) throws -> R) rethrows -> R
}

extension ClientLifecycleLocking {
    /// The body of a client's `run()`: starts it, waits for graceful shutdown, a trigger or task cancellation,
    /// then shuts it down.
    /// - Parameters:
    ///   - action: What ``ClientLifecycle/run()`` already returned, or `nil` to ask it now.
    ///   - start: Called once when `run()` begins (not when shutdown came first).
    ///   - trigger: Asks for shutdown; called on graceful shutdown and on cancellation.
    ///   - shutDown: Frees the client's resources.
    /// - Throws: ``KafkaError/Code/alreadyRunning`` on a second call.
    func run(
        _ action: ClientLifecycle.RunAction? = nil,
        start: () -> Void,
        trigger: @Sendable @escaping () -> Void,
        shutDown: () async -> Void
    ) async throws {
        switch try action ?? withLifecycle({ try $0.run() }) {
        case .waitForShutdown:
            start()
            await withGracefulShutdownHandler {
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        if !withLifecycle({ $0.park(continuation) }) { continuation.resume() }
                    }
                } onCancel: {
                    trigger()
                }
            } onGracefulShutdown: {
                trigger()
            }
        case .shutDownNow:
            break
        }
        await shutDown()
        withLifecycle { $0.finish() }
    }

    /// Asks for shutdown: wakes a parked `run()`, or, when `run()` was never called, shuts down in the background.
    func triggerShutdown(orShutDownInBackground shutDown: @Sendable @escaping () async -> Void) {
        switch withLifecycle({ $0.triggerShutdown() }) {
        case .none, .runWillNotice: break
        case .resume(let continuation): continuation.resume()
        case .shutDownWithoutRun: Task { await shutDown() }
        }
    }

    /// Whether the client still takes new work.
    var acceptsWork: Bool { withLifecycle { $0.acceptsWork } }
}
