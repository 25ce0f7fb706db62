import Synchronization

/// A backend's reports of what goes wrong beside records' own outcomes — from librdkafka: no broker reachable, a
/// connection refused, a name that does not resolve, authentication or TLS failing, a fatal error; from the file
/// queue: its writer failing — turned into error events a reader can keep up with: the first report of each code at
/// once, then at most one every `interval` for that code, saying how many it stands for (a dead cluster reports every
/// broker's every reconnection). The last report is kept, so that a record that timed out can say what the cluster
/// was doing.
final class ClientErrorReports: Sendable {
    private struct State {
        /// Per librdkafka code: when the last event went out, and how many reports since were not sent.
        var sent: [Int32: (at: ContinuousClock.Instant, held: Int)] = [:]
        var last: (error: KafkaError, at: ContinuousClock.Instant)?
    }

    private let state = Mutex(State())
    private let interval: Duration
    private let emit: @Sendable (KafkaError) -> Void

    /// - Parameters:
    ///   - interval: The shortest time between two events of one code (a fatal error always goes out).
    ///   - emit: Receives each event's error, on the thread that reported it.
    init(interval: Duration = .seconds(5), emit: @escaping @Sendable (KafkaError) -> Void) {
        self.interval = interval
        self.emit = emit
    }

    /// A cluster error: sent at once, or held when one of its code went out less than `interval` before `now`.
    func report(_ error: KafkaError, at now: ContinuousClock.Instant = .now) {
        let event: KafkaError? = state.withLock { state in
            state.last = (error, now)
            let key = error.rdKafkaCode?.rawValue ?? 0
            if let previous = state.sent[key], now - previous.at < interval, !error.isFatal {
                state.sent[key] = (previous.at, previous.held + 1)
                return nil
            }
            let held = state.sent[key]?.held ?? 0
            state.sent[key] = (now, 0)
            guard held > 0 else { return error }
            return KafkaError(
                code: error.code,
                reason: "\(error.reason) (and \(held) more of \(error.rdKafkaName ?? "its kind") since the last report)",
                rdKafkaCode: error.rdKafkaCode
            )
        }
        if let event { emit(event) }
    }

    /// `error`, with the cluster's last error in its reason when it is a timeout that librdkafka explains no
    /// further ("Local: Message timed out").
    func explained(_ error: KafkaError) -> KafkaError {
        guard error.rdKafkaCode == .messageTimedOut, let (last, at) = state.withLock({ $0.last }) else { return error }
        let seconds = Int((ContinuousClock.now - at).components.seconds)
        return KafkaError(
            code: error.code,
            reason: "\(error.reason); the cluster's last error, \(seconds) s before: \(last.rdKafkaName ?? "\(last.code)"): \(last.reason)",
            rdKafkaCode: error.rdKafkaCode
        )
    }
}
