import DequeModule
import Synchronization

/// The sending side of a client's event stream, and the buffer behind it.
///
/// While nobody reads the stream, at most `limit` events wait: past that the oldest waiting event is dropped for the
/// new one and counted, so a stream nobody reads never grows. Once a reader has asked for an event, nothing is dropped
/// any more: a producer's `enqueue` waits while `limit` events wait unread (``waitForRoom()``), as it waits for room in
/// the backend's queue, so the buffer stays near its bound and every outcome reaches the reader.
final class BoundedEventStream<Event: Sendable>: Sendable {
    private struct State {
        var buffer = Deque<Event>()
        /// A reader has asked for an event: from now on nothing is dropped.
        var isRead = false
        var isFinished = false
        var dropped = 0
        /// The reader, waiting for the next event.
        var reader: UnsafeContinuation<Event?, Never>?
        /// Senders waiting for the reader to take events.
        var roomWaiters = CancellableWaiters()

        var hasRoom: Bool { !isRead || isFinished || buffer.count < limit }
        let limit: Int
    }

    private let state: Mutex<State>

    private init(limit: Int) { state = Mutex(State(limit: max(1, limit))) }

    /// The stream and its sending side.
    static func make(limit: Int) -> (AsyncStream<Event>, BoundedEventStream<Event>) {
        let events = BoundedEventStream(limit: limit)
        return (AsyncStream(unfolding: { await events.next() }), events)
    }

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
            return nil
        }
        reader?.resume(returning: event)
    }

    /// Ends the stream once its buffered events are read; senders waiting for room go on.
    func finish() {
        let (reader, waiters) = state.withLock { state in
            state.isFinished = true
            defer { state.reader = nil }
            return (state.reader, state.roomWaiters.takeAll())
        }
        reader?.resume(returning: nil)
        for waiter in waiters { waiter.resume() }
    }

    /// How many events were dropped unread so far.
    var droppedCount: Int { state.withLock { $0.dropped } }

    /// Whether a sender must wait before it adds an event: a reader has started and `limit` events wait unread.
    var isFull: Bool { state.withLock { !$0.hasRoom } }

    /// Waits until the reader has made room (or the stream ended).
    /// - Throws: ``KafkaError/Code/cancelled`` when the task is cancelled first.
    nonisolated(nonsending) func waitForRoom() async throws {
        let id = state.withLock { $0.roomWaiters.makeID() }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let parked = state.withLock { state in
                    guard !Task.isCancelled, !state.hasRoom else { return false }
                    state.roomWaiters.park(id, continuation)
                    return true
                }
                if !parked { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.roomWaiters.remove(id) }?.resume()
        }
        if Task.isCancelled {
            throw KafkaError(code: .cancelled, reason: "The send was cancelled while it waited for the events stream's reader; it was not sent")
        }
    }

    /// The reader's next event, or `nil` once the stream is finished and drained.
    private func next() async -> Event? {
        // Without suspending while events are buffered; parked (checked again under the lock) when none is.
        if let taken = take(parking: nil) { return taken }
        return await withUnsafeContinuation { continuation in
            if let taken = take(parking: continuation) { continuation.resume(returning: taken) }
        }
    }

    /// The next buffered event (waking the senders waiting for room once there is room), `.some(nil)` once the
    /// stream is finished and drained, or `nil` when there is none yet: then `reader`, if given, is parked.
    private func take(parking reader: UnsafeContinuation<Event?, Never>?) -> Event?? {
        var waiters: [UnsafeContinuation<Void, Never>] = []
        let taken: Event?? = state.withLock { state in
            state.isRead = true
            if let event = state.buffer.popFirst() {
                if state.hasRoom { waiters = state.roomWaiters.takeAll() }
                return .some(event)
            }
            if state.isFinished { return .some(nil) }
            state.reader = reader
            return nil
        }
        for waiter in waiters { waiter.resume() }
        return taken
    }
}
