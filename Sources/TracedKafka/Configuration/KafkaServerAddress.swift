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

    /// Throws unless there is at least one bootstrap server, which the librdkafka backend needs, and each names a
    /// host and a port: `host:port` or `[IPv6]:port`, optionally after a `protocol://` (entries may also be given
    /// comma-separated in one string, as librdkafka takes them). librdkafka would dial a missing port as 9092 and a
    /// port that is no number as 0.
    static func validateBootstrapServers(_ servers: [String]) throws {
        let entries = servers.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !entries.isEmpty else {
            throw KafkaError(
                code: .configuration,
                reason: "No bootstrap servers: name at least one broker as host:port, or choose the file queue backend"
            )
        }
        for entry in entries {
            let address = entry.range(of: "://").map { String(entry[$0.upperBound...]) } ?? entry
            let host: Substring, port: Substring?
            if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
                host = address[address.index(after: address.startIndex)..<close]
                let rest = address[address.index(after: close)...]
                port = rest.hasPrefix(":") ? rest.dropFirst() : nil
            } else if let colon = address.lastIndex(of: ":"), !address[..<colon].contains(":") {
                host = address[..<colon]
                port = address[address.index(after: colon)...]
            } else {
                (host, port) = (address[...], nil)
            }
            let problem: String?
            if host.isEmpty {
                problem = "has no host"
            } else if let port {
                problem = Int(port).map({ (1...65_535).contains($0) }) == true ? nil : "has no valid port (1 to 65535)"
            } else {
                problem = "has no port (write host:port, such as localhost:9092)"
            }
            if let problem {
                throw KafkaError(code: .configuration, reason: "Bootstrap server \(String(reflecting: entry)) \(problem)")
            }
        }
    }

    func apply(to attributes: inout SpanAttributes) {
        attributes.set("server.address", value: .string(host))
        if let port { attributes.set("server.port", value: .int64(Int64(port))) }
    }
}
