import Synchronization

/// A one-shot slot for a delivery outcome that may arrive before or after its sender awaits it.
///
/// One per awaited send, so its state is a plain struct (no enum with payloads, whose copies go through the runtime)
/// and the sender waits on an unsafe continuation (no checking object allocated per send): the state below resumes
/// it exactly once.
final class DeliveryPromise: Sendable {
    private struct State {
        /// The sender, once it waits and until it is resumed.
        var waiter: UnsafeContinuation<KafkaDeliveryReport, any Error>?
        /// The outcome, when it came before the sender waited.
        var early: Result<KafkaDeliveryReport, KafkaError>?
        /// Whether the outcome has come (to ``early`` or straight to the waiter).
        var isFulfilled = false
    }

    private let state = Mutex(State())

    /// Stores the outcome, or hands it to the waiting sender. Only the first call counts.
    func fulfil(_ result: Result<KafkaDeliveryReport, KafkaError>) {
        let waiter: UnsafeContinuation<KafkaDeliveryReport, any Error>? = state.withLock { state in
            guard !state.isFulfilled else { return nil }
            state.isFulfilled = true
            guard let waiter = state.waiter else {
                state.early = result
                return nil
            }
            state.waiter = nil
            return waiter
        }
        if let waiter { Self.resume(waiter, with: result) }
    }

    /// The outcome, once there is one; awaited once, by the sender. A record handed to the backend can't be taken
    /// back, so this waits for its outcome even when the awaiting task is cancelled.
    var value: KafkaDeliveryReport {
        get async throws {
            try await withUnsafeThrowingContinuation { continuation in
                let early: Result<KafkaDeliveryReport, KafkaError>? = state.withLock { state in
                    precondition(state.waiter == nil, "A delivery outcome is awaited once")
                    guard state.isFulfilled else {
                        state.waiter = continuation
                        return nil
                    }
                    guard let early = state.early else { preconditionFailure("A delivery outcome is awaited once") }
                    state.early = nil
                    return early
                }
                if let early { Self.resume(continuation, with: early) }
            }
        }
    }

    private static func resume(_ continuation: UnsafeContinuation<KafkaDeliveryReport, any Error>, with result: Result<KafkaDeliveryReport, KafkaError>) {
        switch result {
        case .success(let report): continuation.resume(returning: report)
        case .failure(let error): continuation.resume(throwing: error)
        }
    }
}
