import CRdKafka
import Dispatch
import Foundation
import Synchronization

/// Keeps one librdkafka handle alive; destroys it (off the caller's thread: `rd_kafka_destroy` blocks) when the
/// last holder is gone. The client holds one until it has closed; every consumed ``RDMessage`` holds one too,
/// since librdkafka's messages must be destroyed before their handle.
final class RDHandleKeeper: @unchecked Sendable {
    // Immutable after init; destroyed once, in deinit.
    let handle: OpaquePointer
    /// The callbacks' receiver: the conf opaque, so it must outlive the handle.
    let callbacks: RDCallbacks

    init(handle: OpaquePointer, callbacks: RDCallbacks) {
        self.handle = handle
        self.callbacks = callbacks
    }

    private static let destroyQueue = DispatchQueue(label: "TracedKafka.rdkafka.destroy")

    deinit {
        let handle = UncheckedSendable(handle), callbacks = self.callbacks
        Self.destroyQueue.async {
            rd_kafka_destroy(handle.value)
            withExtendedLifetime(callbacks) {}
        }
    }
}

/// A value handed to another thread whose safety the code around it guarantees (here: a handle used by one
/// thread at a time).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A message librdkafka handed over, kept as it is: its key, value and headers are copied into Swift when each is
/// first read (and headers parsed only then), so a handler that reads less pays for less. The message is destroyed
/// once everything was copied out, or with the last reference.
final class RDMessage: Sendable {
    /// The message pointer belongs to this object alone and is only touched under the lock.
    private struct State: @unchecked Sendable {
        var message: UnsafeMutablePointer<rd_kafka_message_t>?
        var key: [UInt8]??
        var value: [UInt8]??
        var headers: KafkaHeaders?

        /// Destroys the message once nothing more is to be read from it.
        mutating func releaseIfRead() {
            guard key != nil, value != nil, headers != nil, let message else { return }
            rd_kafka_message_destroy(message)
            self.message = nil
        }
    }

    private let state: Mutex<State>
    private let keeper: RDHandleKeeper
    /// The value's length (0 for a tombstone), read at once: no copy.
    let valueCount: Int
    /// Whether the value is absent.
    let isTombstone: Bool

    /// Takes over `message` (destroyed by this object).
    init(_ message: UnsafeMutablePointer<rd_kafka_message_t>, keeper: RDHandleKeeper) {
        self.keeper = keeper
        self.isTombstone = message.pointee.payload == nil
        self.valueCount = message.pointee.payload == nil ? 0 : message.pointee.len
        self.state = Mutex(State(message: message))
    }

    deinit {
        state.withLock { state in
            if let message = state.message { rd_kafka_message_destroy(message) }
        }
        withExtendedLifetime(keeper) {}
    }

    var key: [UInt8]? { bytes(\.key) { ($0.key, $0.key_len) } }

    var value: [UInt8]? { bytes(\.value) { ($0.payload, $0.len) } }

    /// The bytes `field` of the message holds, copied on first read and kept in `cache`.
    private func bytes(
        _ cache: WritableKeyPath<State, [UInt8]??>,
        _ field: (rd_kafka_message_t) -> (UnsafeMutableRawPointer?, Int)
    ) -> [UInt8]? {
        state.withLock { state in
            if let cached = state[keyPath: cache] { return cached }
            let bytes = state.message.flatMap { message in
                let (pointer, count) = field(message.pointee)
                return pointer.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) }
            }
            state[keyPath: cache] = .some(bytes)
            state.releaseIfRead()
            return bytes
        }
    }

    var headers: KafkaHeaders {
        state.withLock { state in
            if let headers = state.headers { return headers }
            let headers = state.message.map(Self.headers) ?? []
            state.headers = headers
            state.releaseIfRead()
            return headers
        }
    }

    var hasHeaders: Bool { !headers.isEmpty }

    private static func headers(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaHeaders {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var result = KafkaHeaders()
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            // Keys are C strings here; one that is not UTF-8 keeps its bytes.
            let header = name.map { name in
                String(validatingCString: name).map { KafkaHeader(key: $0, value: bytes) }
                    ?? KafkaHeader(keyBytes: Array(UnsafeRawBufferPointer(start: name, count: strlen(name))), value: bytes)
            }
            result.append(header ?? KafkaHeader(key: "", value: bytes))
            index += 1
        }
        return result
    }
}
