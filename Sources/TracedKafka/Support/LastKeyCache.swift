/// Values made once per key, with the last key asked for in front: a client mostly meets one topic many times in a
/// row, and comparing a key with the last one (usually the very same string or pointer) is cheaper than hashing it.
/// Keeps at most `limit` keys; a value for a key past the limit is made each time it is asked for.
struct LastKeyCache<Key: Hashable, Value> {
    private var last: (key: Key, value: Value)?
    private var values: [Key: Value] = [:]
    private let limit: Int

    /// An empty cache that keeps at most `limit` keys.
    init(limit: Int = .max) {
        self.limit = limit
    }

    /// The value for `key`, made with `make` the first time.
    mutating func value(for key: Key, make: (Key) -> Value) -> Value {
        if let last, last.key == key { return last.value }
        let value: Value
        if let known = values[key] {
            value = known
        } else {
            value = make(key)
            if values.count < limit { values[key] = value }
        }
        last = (key, value)
        return value
    }
}
