import Foundation

/// An order placed through orders-api, as it travels on `orders.placed`.
struct Order: Codable, Sendable {
    /// The order's id.
    var id: String
    /// Who placed it; also the record key, so one customer's orders stay in order on one partition.
    var customer: String
    /// What was ordered.
    var item: String
    /// The amount to charge, in cents.
    var amountCents: Int
}

/// A captured payment, as payments publishes it on `payments.captured`.
struct Payment: Codable, Sendable {
    /// The order paid for.
    var orderID: String
    /// Who paid.
    var customer: String
    /// The amount charged, in cents.
    var amountCents: Int
    /// The payment provider's reference.
    var reference: String
}

/// The pipeline's topics.
enum Topic {
    /// orders-api → payments.
    static let ordersPlaced = "orders.placed"
    /// payments → notifications.
    static let paymentsCaptured = "payments.captured"
    /// Every topic, for creating them up front.
    static let all = [ordersPlaced, paymentsCaptured]
}

/// JSON for the record values.
enum Wire {
    /// Encodes a value as a record value.
    /// - Parameter value: The value.
    /// - Returns: Its JSON, as bytes.
    /// - Throws: `EncodingError` when the value cannot be encoded.
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try JSONEncoder().encode(value))
    }

    /// Decodes a record value.
    /// - Parameters:
    ///   - type: What to decode.
    ///   - bytes: The record value.
    /// - Returns: The value, or `nil` for a tombstone or malformed JSON.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]?) -> T? {
        bytes.flatMap { try? JSONDecoder().decode(type, from: Data($0)) }
    }
}
