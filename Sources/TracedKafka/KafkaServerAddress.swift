import Foundation
import Tracing

/// `server.address` and `server.port`, from the first bootstrap server (none on the file queue).
struct KafkaServerAddress: Sendable {
    let host: String
    let port: Int?

    init?(backend: KafkaBackend, bootstrapServers: [String]) {
        guard case .librdkafka = backend.kind else { return nil }
        self.init(bootstrapServers: bootstrapServers)
    }

    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address has no port.
    init?(bootstrapServers: [String]) {
        // The first one given, skipping blank entries (which the bootstrap check skips too).
        guard let first = bootstrapServers.lazy.map({ $0.trimmingCharacters(in: .whitespaces) }).first(where: { !$0.isEmpty }) else {
            return nil
        }
        if first.hasPrefix("["), let close = first.firstIndex(of: "]") {
            host = String(first[first.index(after: first.startIndex)..<close])
            let rest = first[first.index(after: close)...]
            port = rest.hasPrefix(":") ? Int(rest.dropFirst()) : nil
        } else if first.filter({ $0 == ":" }).count == 1, let colon = first.firstIndex(of: ":"),
            let port = Int(first[first.index(after: colon)...])
        {
            host = String(first[..<colon])
            self.port = port
        } else {
            host = first
            port = nil
        }
    }

    /// Throws unless there is at least one bootstrap server, which the librdkafka backend needs.
    static func requireBootstrapServers(_ servers: [String]) throws {
        guard servers.contains(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
            throw KafkaError(
                code: .configuration,
                reason: "No bootstrap servers: name at least one broker as host:port, or choose the file queue backend"
            )
        }
    }

    func apply(to attributes: inout SpanAttributes) {
        attributes.set("server.address", value: .string(host))
        if let port { attributes.set("server.port", value: .int64(Int64(port))) }
    }
}
