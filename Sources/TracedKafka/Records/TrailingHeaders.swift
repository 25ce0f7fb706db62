/// Headers written after a record's own, kept beside the record until the backend writes them (the producer's
/// tracing puts the trace context here): a send that adds headers makes no array of headers and no ``KafkaHeader``
/// per record. The first two are held inline; more go to an array.
///
/// Not API: visible to the benchmarks through `@_spi(Benchmarks) import TracedKafka`.
@_spi(Benchmarks) public struct TrailingHeaders: Sendable {
    private var first: (key: String, value: String)?
    private var second: (key: String, value: String)?
    private var more: [(key: String, value: String)] = []

    /// No headers.
    public init() {}

    /// Whether there are none.
    var isEmpty: Bool { first == nil }

    /// How many there are.
    var count: Int { first == nil ? 0 : second == nil ? 1 : 2 + more.count }

    /// Sets `key` to `value`, replacing an earlier value of the same key.
    mutating func set(_ value: String, forKey key: String) {
        if first == nil || first?.key == key {
            first = (key, value)
        } else if second == nil || second?.key == key {
            second = (key, value)
        } else if let index = more.firstIndex(where: { $0.key == key }) {
            more[index].value = value
        } else {
            more.append((key, value))
        }
    }

    /// Whether one is named `key`.
    func contains(key: String) -> Bool {
        first?.key == key || second?.key == key || more.contains { $0.key == key }
    }

    /// Calls `body` with each key and value, in the order they were first written.
    func forEach(_ body: (String, String) -> Void) {
        guard let first else { return }
        body(first.key, first.value)
        guard let second else { return }
        body(second.key, second.value)
        for (key, value) in more { body(key, value) }
    }
}
