import CRdKafka
import Dispatch
import Foundation
import Synchronization

/// Keeps one librdkafka handle alive; destroys it (off the caller's thread: `rd_kafka_destroy` blocks) when the
/// last holder is gone. The client holds one until it has closed; every ``RDMessageBatch`` of consumed messages holds one too,
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

/// The messages librdkafka handed over in one fetch, kept as they are: a message's key, value and headers are
/// copied into Swift when they are read, so a handler that reads less pays for less. One object for the whole batch
/// (not one per message): the messages are destroyed together, with the last reference to any of them.
///
/// librdkafka already shares one fetch response's memory between the messages read from it, so holding one message
/// of a batch keeps about what holding its fetch response did.
final class RDMessageBatch: Sendable {
    /// The messages, owned by this object; immutable except for the header parse (under `headerLock`).
    private let messages: UncheckedSendable<UnsafeMutableBufferPointer<UnsafeMutablePointer<rd_kafka_message_t>>>
    /// `rd_kafka_message_headers` parses a message's headers on its first call and keeps them in the message.
    private let headerLock = Mutex(())
    private let keeper: RDHandleKeeper

    /// Takes over `messages` (destroyed by this object).
    init(_ messages: some Collection<UnsafeMutablePointer<rd_kafka_message_t>>, keeper: RDHandleKeeper) {
        let buffer = UnsafeMutableBufferPointer<UnsafeMutablePointer<rd_kafka_message_t>>.allocate(capacity: messages.count)
        _ = buffer.initialize(from: messages)
        self.messages = UncheckedSendable(buffer)
        self.keeper = keeper
    }

    deinit {
        for message in messages.value { rd_kafka_message_destroy(message) }
        messages.value.deallocate()
        withExtendedLifetime(keeper) {}
    }

    /// The key of message `index`, copied, or `nil`.
    func key(_ index: Int) -> [UInt8]? { bytes(index, key: true).map { Array($0) } }

    /// The value of message `index`, copied, or `nil` for a tombstone.
    func value(_ index: Int) -> [UInt8]? { bytes(index, key: false).map { Array($0) } }

    /// The key of message `index` as text, read in place, or `nil` (no key, or not UTF-8).
    func keyString(_ index: Int) -> String? { bytes(index, key: true).flatMap { String(utf8Bytes: $0) } }

    /// The value of message `index` as text, read in place, or `nil` (a tombstone, or not UTF-8).
    func valueString(_ index: Int) -> String? { bytes(index, key: false).flatMap { String(utf8Bytes: $0) } }

    /// Calls `body` with the key or the value of message `index` where librdkafka holds it (no copy), or with `nil`
    /// when it is absent; valid only while `body` runs.
    func withBytes<R>(_ index: Int, key: Bool, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try body(bytes(index, key: key))
    }

    /// The key or the value of message `index` where librdkafka holds it (valid while the batch lives), or `nil`.
    private func bytes(_ index: Int, key: Bool) -> UnsafeRawBufferPointer? {
        let message = messages.value[index].pointee
        let start = key ? message.key : message.payload
        return start.map { UnsafeRawBufferPointer(start: $0, count: key ? message.key_len : message.len) }
    }

    /// The value's length (0 for a tombstone), without a copy.
    func valueCount(_ index: Int) -> Int {
        let message = messages.value[index].pointee
        return message.payload == nil ? 0 : message.len
    }

    /// Whether the value of message `index` is absent.
    func isTombstone(_ index: Int) -> Bool { messages.value[index].pointee.payload == nil }

    /// Whether message `index` has any header.
    func hasHeaders(_ index: Int) -> Bool {
        headerList(index).map { rd_kafka_header_cnt($0) > 0 } ?? false
    }

    /// `body` applied to the last value of header `key` of message `index`, read where librdkafka holds it; `nil`
    /// when there is no such header or its last one has no value.
    func withLastHeaderValue<Result>(_ index: Int, key: String, _ body: (UnsafeRawBufferPointer) -> Result?) -> Result? {
        guard let list = headerList(index) else { return nil }
        var value: UnsafeRawPointer?
        var size = 0
        // withCString: a short key is a small string, which an implicit conversion would copy to the heap.
        let found = key.withCString { rd_kafka_header_get_last(list, $0, &value, &size) }
        guard found == RD_KAFKA_RESP_ERR_NO_ERROR, let value else { return nil }
        return body(UnsafeRawBufferPointer(start: value, count: size))
    }

    /// The headers of message `index`, copied, in the order they were produced.
    func headers(_ index: Int) -> KafkaHeaders {
        guard let list = headerList(index) else { return [] }
        var result = KafkaHeaders()
        result.reserveCapacity(rd_kafka_header_cnt(list))
        var position = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, position, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            // Keys are C strings here; one that is not UTF-8 keeps its bytes.
            let header = name.map { name in
                let key = UnsafeRawBufferPointer(start: name, count: strlen(name))
                return String(utf8Bytes: key).map { KafkaHeader(key: $0, value: bytes) } ?? KafkaHeader(keyBytes: Array(key), value: bytes)
            }
            result.append(header ?? KafkaHeader(key: "", value: bytes))
            position += 1
        }
        return result
    }

    /// The parsed header list of message `index` (parsed on first use, under the lock; read-only after), or `nil`.
    private func headerList(_ index: Int) -> OpaquePointer? {
        let message = messages.value[index]
        let list = headerLock.withLock { _ in
            var list: OpaquePointer?
            guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return UncheckedSendable<OpaquePointer?>(nil) }
            return UncheckedSendable(list)
        }
        return list.value
    }
}
