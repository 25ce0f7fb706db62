import DequeModule
import Synchronization

/// The sending side of a client's event stream, and the buffer behind it.
///
/// While nobody reads the stream, at most `limit` events wait: past that the oldest waiting event is dropped for the
/// new one and counted, so a stream nobody reads never grows. Once a reader has asked for an event, nothing is dropped
/// any more: a producer's `enqueue` waits while `limit` events wait unread (``isFull``), as it waits for room in the
/// backend's queue and with the same waiters (the producer's), told by `onRoom` when the reader has made room; so the
/// buffer stays near its bound and every outcome reaches the reader.
final class BoundedEventStream<Event: Sendable>: Sendable {
    private struct State {
        var buffer = Deque<Event>()
        /// A reader has asked for an event: from now on nothing is dropped.
        var isRead = false
        var isFinished = false
        var dropped = 0
        /// The reader, waiting for the next event.
        var reader: UnsafeContinuation<Event?, Never>?

        var hasRoom: Bool { !isRead || isFinished || buffer.count < limit }
        let limit: Int
    }

    private let state: Mutex<State>
    /// `!state.hasRoom`, stored under the lock whenever it may change, so that a sender reads it without the lock.
    private let full = Atomic(false)
    /// Called, outside the lock, each time the reader makes room in a full buffer.
    private let onRoom: (@Sendable () -> Void)?

    /// Creates the sending side; ``stream`` is the reading side.
    /// - Parameters:
    ///   - limit: How many events wait unread at most (at least 1).
    ///   - onRoom: Called each time the reader takes an event from a full buffer, for the senders waiting on
    ///     ``isFull``.
    init(limit: Int, onRoom: (@Sendable () -> Void)? = nil) {
        state = Mutex(State(limit: max(1, limit)))
        self.onRoom = onRoom
    }

    /// The stream and its sending side.
    static func make(limit: Int) -> (AsyncStream<Event>, BoundedEventStream<Event>) {
        let events = BoundedEventStream(limit: limit)
        return (events.stream, events)
    }

    /// The reading side: a stream of the events, which ends once ``finish()`` was called and every event was read.
    var stream: AsyncStream<Event> { AsyncStream(unfolding: { await self.next() }) }

    /// Adds an event: hands it to the waiting reader, or buffers it (dropping the oldest while nobody reads).
    func yield(_ event: Event) {
        let reader: UnsafeContinuation<Event?, Never>? = state.withLock { state in
            guard !state.isFinished else { return nil }
            if let reader = state.reader {
                state.reader = nil
                return reader
            }
            state.buffer.append(event)
            if !state.isRead, state.buffer.count > state.limit {
                state.buffer.removeFirst()
                state.dropped += 1
            }
            full.store(!state.hasRoom, ordering: .relaxed)
            return nil
        }
        reader?.resume(returning: event)
    }

    /// Ends the stream once its buffered events are read.
    func finish() {
        let reader = state.withLock { state in
            state.isFinished = true
            full.store(false, ordering: .relaxed)
            defer { state.reader = nil }
            return state.reader
        }
        reader?.resume(returning: nil)
    }

    /// How many events were dropped unread so far.
    var droppedCount: Int { state.withLock { $0.dropped } }

    /// Whether a sender must wait before it adds an event: a reader has started and `limit` events wait unread.
    /// Read without the lock: a sender that reads it after `onRoom` was called for the room it waits for sees `false`.
    var isFull: Bool { full.load(ordering: .relaxed) }

    /// The reader's next event, or `nil` once the stream is finished and drained.
    private func next() async -> Event? {
        // Without suspending while events are buffered; parked (checked again under the lock) when none is.
        if let taken = take(parking: nil) { return taken }
        return await withUnsafeContinuation { continuation in
            if let taken = take(parking: continuation) { continuation.resume(returning: taken) }
        }
    }

    /// The next buffered event (calling `onRoom` when that makes room in a full buffer), `.some(nil)` once the
    /// stream is finished and drained, or `nil` when there is none yet: then `reader`, if given, is parked.
    private func take(parking reader: UnsafeContinuation<Event?, Never>?) -> Event?? {
        var madeRoom = false
        let taken: Event?? = state.withLock { state in
            state.isRead = true
            if let event = state.buffer.popFirst() {
                let wasFull = full.load(ordering: .relaxed)
                full.store(!state.hasRoom, ordering: .relaxed)
                madeRoom = wasFull && state.hasRoom
                return .some(event)
            }
            if state.isFinished { return .some(nil) }
            state.reader = reader
            return nil
        }
        if madeRoom { onRoom?() }
        return taken
    }
}
