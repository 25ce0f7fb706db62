import Synchronization

/// A one-shot slot for a delivery outcome that may arrive before or after someone awaits it.
final class DeliveryPromise: Sendable {
    private enum State {
        case pending(CheckedContinuation<KafkaDeliveryReport, any Error>?)
        case done(Result<KafkaDeliveryReport, KafkaError>)
    }

    private let state = Mutex(State.pending(nil))

    /// Stores the outcome and wakes the waiter, if any. Only the first call counts.
    func fulfil(_ result: Result<KafkaDeliveryReport, KafkaError>) {
        let waiter: CheckedContinuation<KafkaDeliveryReport, any Error>? = state.withLock { state in
            guard case .pending(let waiter) = state else { return nil }
            state = .done(result)
            return waiter
        }
        waiter?.resume(with: result.mapError { $0 })
    }

    /// The outcome, once there is one. A record handed to the backend can't be taken back, so this waits for its
    /// outcome even when the awaiting task is cancelled.
    var value: KafkaDeliveryReport {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let done: Result<KafkaDeliveryReport, KafkaError>? = state.withLock { state in
                    switch state {
                    case .done(let result): return result
                    case .pending:
                        state = .pending(continuation)
                        return nil
                    }
                }
                if let done { continuation.resume(with: done.mapError { $0 }) }
            }
        }
    }
}
