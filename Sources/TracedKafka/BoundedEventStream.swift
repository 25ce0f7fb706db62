import Synchronization

/// The sending side of a client's event stream: at most `limit` events wait unread; past that the oldest waiting
/// event is dropped for the new one and counted, so a stream nobody reads never grows.
final class BoundedEventStream<Event: Sendable>: Sendable {
    private let continuation: AsyncStream<Event>.Continuation
    private let dropped = Atomic<Int>(0)

    /// The stream and its sending side.
    static func make(limit: Int) -> (AsyncStream<Event>, BoundedEventStream<Event>) {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(max(1, limit)))
        return (stream, BoundedEventStream(continuation))
    }

    private init(_ continuation: AsyncStream<Event>.Continuation) {
        self.continuation = continuation
    }

    func yield(_ event: Event) {
        if case .dropped = continuation.yield(event) { dropped.add(1, ordering: .relaxed) }
    }

    func finish() { continuation.finish() }

    /// How many events were dropped unread so far.
    var droppedCount: Int { dropped.load(ordering: .relaxed) }
}
