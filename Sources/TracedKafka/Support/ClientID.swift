import Synchronization

/// The client id of a client made without one: `producer-N` or `consumer-N`, counting the clients of that kind made
/// in this process (Java's client names its clients the same way), so that every span, metric and log line of a
/// client, and the broker, see one id that tells two clients of a process apart.
enum ClientID {
    private static let counts = Mutex<[String: Int]>([:])

    /// `given`, or the next `<kind>-N`.
    static func resolve(_ given: String?, kind: String) -> String {
        if let given { return given }
        let number = counts.withLock { counts in
            counts[kind, default: 0] += 1
            return counts[kind]!
        }
        return "\(kind)-\(number)"
    }
}
