import CRdKafka
import Foundation
import InMemoryLogging
import Logging
import Testing
@testable import TracedKafka
import TracedKafkaTesting

/// What a service learns when the cluster is not there: error events, classified errors, timeouts that say why.
@Suite("Cluster errors reach the code", .timeLimit(.minutes(1)))
struct ClusterErrorTests {
    static let unreachable = ["127.0.0.1:1"]

    @Test("A producer pointed at an unreachable address gets an error event long before any record times out")
    func producerErrorEvent() async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: Self.unreachable)
        configuration.tracing = .disabled
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration)
        try await producer.enqueue(KafkaProducerRecord(topic: "orders", value: "x"))
        let error = try await withDeadline("a producer error event", .seconds(10)) { () -> KafkaError? in
            for await event in events { if case .error(let error) = event { return error } }
            return nil
        }
        let code = try #require(error?.rdKafkaCode)
        #expect([.transport, .allBrokersDown].contains(code), "got \(code)")
        #expect(error?.isRetriable == true)
        #expect(error?.reason.contains("127.0.0.1:1") == true)
        producer.triggerGracefulShutdown()
    }

    @Test("A consumer pointed at an unreachable address gets an error event instead of silence")
    func consumerErrorEvent() async throws {
        let configuration = KafkaConsumerConfiguration(bootstrapServers: Self.unreachable, groupID: uniqueName("g"), topics: ["orders"])
        let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: configuration)
        let running = Task { try await consumer.run { _ in } }
        let error = try await withDeadline("a consumer error event", .seconds(10)) { () -> KafkaError? in
            for await event in events where event.kind == .error { return event.error }
            return nil
        }
        let code = try #require(error?.rdKafkaCode)
        #expect([.transport, .allBrokersDown].contains(code), "got \(code)")
        consumer.triggerGracefulShutdown()
        _ = try? await running.value
    }

    @Test("A record that times out against an unreachable cluster says what the cluster's last error was")
    func timeoutNamesTheCause() async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: Self.unreachable, properties: ["message.timeout.ms": "1500"])
        configuration.tracing = .disabled
        let producer = try KafkaProducer(configuration: configuration)
        let error = try await withRunning(producer) { producer in
            await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerRecord(topic: "orders", value: "x")) }
        }
        #expect(error?.rdKafkaCode == .messageTimedOut)
        #expect(error?.isRetriable == true)
        #expect(error?.reason.contains("the cluster's last error") == true, "\(String(describing: error))")
        #expect(error?.reason.contains("Connect to ipv4#127.0.0.1:1 failed") == true)
    }

    @Test("A dead cluster's repeated reports become one event per code and interval, which says how many it stands for")
    func reportsAreRateLimited() {
        let sent = Shared<[KafkaError]>([])
        let reports = ClientErrorReports(interval: .seconds(5)) { error in sent.withLock { $0.append(error) } }
        let start = ContinuousClock.now
        let refused = KafkaError(code: .rdKafka, reason: "Connect refused", rdKafkaCode: .transport)
        reports.report(refused, at: start)
        reports.report(refused, at: start + .seconds(1))
        reports.report(refused, at: start + .seconds(2))
        reports.report(KafkaError(code: .rdKafka, reason: "1/1 brokers are down", rdKafkaCode: .allBrokersDown), at: start + .seconds(2))
        reports.report(refused, at: start + .seconds(6))
        let events = sent.withLock { $0 }
        #expect(events.map(\.rdKafkaCode) == [.transport, .allBrokersDown, .transport])
        #expect(events.last?.reason == "Connect refused (and 2 more of _TRANSPORT since the last report)")
        let fatal = KafkaError(code: .fatal, reason: "fenced", rdKafkaCode: .fatal)
        reports.report(fatal, at: start + .seconds(7))
        reports.report(fatal, at: start + .seconds(7))
        #expect(sent.withLock { $0.count } == 5, "a fatal error always goes out")
    }

    @Test("Errors say whether to retry and whether the client is done, from librdkafka's codes and the library's")
    func classification() {
        #expect(KafkaError(code: .rdKafka, reason: "", rdKafkaCode: .messageTimedOut).isRetriable)
        #expect(KafkaError(code: .rdKafka, reason: "", rdKafkaCode: .notLeaderForPartition).isRetriable)
        #expect(!KafkaError(code: .rdKafka, reason: "", rdKafkaCode: .topicAuthorizationFailed).isRetriable)
        #expect(!KafkaError(code: .rdKafka, reason: "", rdKafkaCode: .messageSizeTooLarge).isRetriable)
        #expect(KafkaError(code: .timedOut, reason: "").isRetriable)
        #expect(!KafkaError(code: .invalidRecord, reason: "").isRetriable)
        #expect(!KafkaError(code: .cancelled, reason: "").isRetriable)
        #expect(KafkaError(code: .fatal, reason: "").isFatal)
        #expect(KafkaError(code: .rdKafka, reason: "", rdKafkaCode: .producerFenced).isFatal)
        #expect(!KafkaError(code: .fatal, reason: "", rdKafkaCode: .messageTimedOut).isRetriable, "never retry a fatal error")
        #expect(KafkaError.RdKafkaCode.messageTimedOut.name == "_MSG_TIMED_OUT")
        #expect(KafkaError.RdKafkaCode.unknownTopicOrPartition.name == "UNKNOWN_TOPIC_OR_PART")
        #expect(KafkaError.rdKafka(RD_KAFKA_RESP_ERR__FENCED).code == .fatal)
    }
}

@Suite("Authentication and TLS failures reach the code", .timeLimit(.minutes(1)))
struct SecurityFailureTests {
    /// The first error event of a producer with `security` against the embedded broker (which speaks plaintext
    /// only) that `matches`; other error events (all brokers down, a disconnect) may come before it.
    static func firstError(_ security: KafkaSecurity, matching matches: @escaping @Sendable (KafkaError) -> Bool) async throws -> KafkaError? {
        var configuration = producerConfiguration(KafkaTestCluster.shared)
        configuration.security = security
        configuration.tracing = .disabled
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(configuration: configuration)
        try await producer.enqueue(KafkaProducerRecord(topic: uniqueName("secured"), value: "x"))
        defer { producer.triggerGracefulShutdown() }
        return try await withDeadline("a matching error event", .seconds(10)) { () -> KafkaError? in
            for await event in events { if case .error(let error) = event, matches(error) { return error } }
            return nil
        }
    }

    @Test("SASL against a broker that does not speak it is an error event, not silence until a timeout")
    func saslRefused() async throws {
        let error = try await Self.firstError(.sasl(.plain(username: "svc", password: "secret"), tls: nil)) {
            $0.rdKafkaCode == .authentication
        }
        #expect(error?.isRetriable == false, "fix the configuration")
        #expect(error?.reason.contains("SASL") == true)
    }

    /// Whether the `openssl` command is there to make a certificate and serve TLS with it.
    static let hasOpenSSL = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")

    @Test(
        "verifiesBrokerCertificate: on, a broker certificate no trusted root signed fails the TLS handshake as an error event; off, the handshake completes and the client goes on to ask the broker's API versions",
        .enabled(if: hasOpenSSL, "needs the openssl command"),
        arguments: [true, false]
    )
    func brokerCertificateVerification(verifies: Bool) async throws {
        // A TLS server (`openssl s_server`) on 127.0.0.1 with a self-signed certificate, which no trusted root signed.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("tls")).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificate = try ChildProcess("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=broker.test", "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem",
        ])
        try #require(certificate.waitUntilExit() == .exited(0), "openssl could not make a certificate")
        let server = try ChildProcess(
            "/usr/bin/openssl",
            ["s_server", "-accept", "127.0.0.1:0", "-cert", "\(directory)/cert.pem", "-key", "\(directory)/key.pem", "-www"],
            standardOutput: .pipe
        )
        defer {
            server.kill(SIGTERM)
            _ = server.waitUntilExit()
        }
        var port: Substring?
        while port == nil, let line = server.standardOutput?.readLine() {
            if line.hasPrefix("ACCEPT ") { port = line.split(separator: ":").last }
        }
        let address = try #require(port.map { "127.0.0.1:\($0)" }, "openssl s_server named no port")

        var handler = InMemoryLogHandler()
        handler.logLevel = .debug
        let captured = handler
        // librdkafka's `broker` debug lines give each connection's states: past the handshake, it asks for API versions.
        var configuration = KafkaProducerConfiguration(bootstrapServers: [address], properties: ["debug": "broker"])
        configuration.tracing = .disabled
        // The host name is not checked (the certificate names broker.test), so the verdict is the chain's alone.
        configuration.security = .tls(.init(verifiesBrokerCertificate: verifies, verifiesHostname: false))
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(
            configuration: configuration, logger: Logger(label: "test") { _ in captured }
        )
        defer { producer.triggerGracefulShutdown() }
        try await producer.enqueue(KafkaProducerRecord(topic: uniqueName("secured"), value: "x"))
        let refusal = Shared<KafkaError?>(nil)
        let reader = Task {
            for await event in events {
                if case .error(let error) = event, error.reason.contains("certificate verify failed") { refusal.withLock { $0 = $0 ?? error } }
            }
        }
        defer { reader.cancel() }
        func handshakeCompleted() -> Bool {
            captured.entries.contains { "\($0.message)".contains("Broker changed state SSL_HANDSHAKE -> APIVERSION_QUERY") }
        }
        // Whichever comes first decides: the refusal, or the handshake done.
        while refusal.withLock({ $0 }) == nil, !handshakeCompleted() { try await Task.sleep(for: .milliseconds(10)) }
        if verifies {
            // librdkafka 2.0.2 reports it as the handshake failing (_SSL) or as a disconnect in SSL_HANDSHAKE (_TRANSPORT).
            let error = try #require(refusal.withLock { $0 }, "the handshake completed with an unverifiable certificate")
            #expect(error.rdKafkaCode == .ssl || error.rdKafkaCode == .transport, "\(error)")
        } else {
            #expect(refusal.withLock { $0 } == nil, "the certificate was verified")
            #expect(handshakeCompleted())
        }
    }

    @Test("TLS against a broker that does not speak it is an error event, not silence until a timeout")
    func tlsRefused() async throws {
        // librdkafka 2.0.2 reports a handshake the broker hung up on as a transport error, naming the TLS handshake.
        let error = try await Self.firstError(.tls()) { $0.rdKafkaCode == .ssl || $0.reason.contains("SSL") }
        #expect(error?.isRetriable == (error?.rdKafkaCode == .transport))
    }
}
