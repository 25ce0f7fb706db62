import Foundation
import Testing
@testable import TracedKafka
import TracedKafkaTesting

@Suite("The admin client")
struct AdminClientTests {
    @Test("On the file queue: create, refuse a second create, list, describe, delete; a producer of a deleted topic fails, then makes it afresh")
    func fileQueueTopics() async throws {
        let directory = freshQueueDirectory()
        let admin = try KafkaAdminClient(configuration: KafkaAdminConfiguration(backend: .fileQueue(directory: directory)))
        try await admin.createTopic("orders", partitions: 3)
        let again = await #expect(throws: KafkaError.self) { try await admin.createTopic("orders", partitions: 3) }
        #expect(again?.code == .topicAlreadyExists)
        for (name, partitions, configs) in [("bad topic!", 1, [String: String]()), ("zero", 0, [:]), ("configured", 1, ["retention.ms": "1"])] {
            let refused = await #expect(throws: KafkaError.self) { try await admin.createTopic(name, partitions: partitions, configs: configs) }
            #expect(refused?.code == .configuration, "\(name)")
        }
        try await admin.createTopic("payments", partitions: 1)
        #expect(try await admin.listTopics() == ["orders", "payments"])
        let description = try await admin.describeTopic("orders")
        #expect(description.partitions.map(\.id) == [0, 1, 2] && description.replicationFactor == 1)

        let producer = try fileQueueProducer(directory)
        try await withRunning(producer) { producer in
            _ = try await producer.send(KafkaProducerRecord(topic: "payments", value: "before"))
            try await admin.deleteTopic("payments")
            let gone = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: "payments", value: "into a deleted topic"))
            }
            #expect(gone?.code == .unknownPartition)
            // The next record makes the topic afresh, as a broker that creates topics on use does.
            #expect(try await producer.send(KafkaProducerRecord(topic: "payments", value: "after")).offset == 0)
        }
        let missing = await #expect(throws: KafkaError.self) { try await admin.deleteTopic("never") }
        #expect(missing?.code == .unknownPartition)
        let undescribed = await #expect(throws: KafkaError.self) { _ = try await admin.describeTopic("never") }
        #expect(undescribed?.code == .unknownPartition)
        // A name Kafka allows may begin with a dot; it is listed like any other.
        try await admin.createTopic(".audit", partitions: 1)
        #expect(try await admin.listTopics() == [".audit", "orders", "payments"])
        await admin.close()
        let closed = await #expect(throws: KafkaError.self) { _ = try await admin.listTopics() }
        #expect(closed?.code == .shutDown)
    }

    @Test("On the embedded broker: list and describe (partitions, leaders, replicas); an unknown topic is unknownPartition and is not created")
    func embeddedDescribe() async throws {
        let cluster = try EmbeddedKafkaCluster(brokers: 3)
        try cluster.createTopic("described", partitions: 4, replicationFactor: 3)
        let admin = try KafkaAdminClient(configuration: KafkaAdminConfiguration(bootstrapServers: cluster.bootstrapServerList))
        #expect(try await admin.listTopics().contains("described"))
        let description = try await admin.describeTopic("described")
        #expect(description.partitions.map(\.id) == [0, 1, 2, 3])
        #expect(description.replicationFactor == 3)
        #expect(description.partitions.allSatisfy { $0.leader.map { (1...3).contains($0) } ?? false })
        // Describing a missing topic says so, and creates nothing (the embedded broker creates a topic on a
        // metadata request that names it).
        let missing = await #expect(throws: KafkaError.self) { _ = try await admin.describeTopic("never-created") }
        #expect(missing?.code == .unknownPartition)
        #expect(try await !admin.listTopics().contains("never-created"))
        await admin.close()
        let closed = await #expect(throws: KafkaError.self) { _ = try await admin.listTopics() }
        #expect(closed?.code == .shutDown)
    }
}

@Suite("Typed security settings")
struct SecurityTests {
    func properties(_ security: KafkaSecurity) throws -> [String: String] {
        Dictionary(try security.rdKafkaProperties(), uniquingKeysWith: { $1 })
    }

    @Test("TLS, SASL and both map to librdkafka's properties")
    func mapping() throws {
        let ca = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("ca")).path
        try "-----BEGIN CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        #expect(try properties(.plaintext).isEmpty)
        #expect(try properties(.tls()) == [
            "security.protocol": "ssl", "ssl.ca.location": "probe",
            "enable.ssl.certificate.verification": "true", "ssl.endpoint.identification.algorithm": "https",
        ])
        #expect(try properties(.tls(.init(trustRoots: .file(ca), clientCertificate: .pem(certificate: "CERT", key: "KEY", keyPassword: "k"),
                                         verifiesHostname: false))) == [
            "security.protocol": "ssl", "ssl.ca.location": ca, "ssl.certificate.pem": "CERT", "ssl.key.pem": "KEY",
            "ssl.key.password": "k", "enable.ssl.certificate.verification": "true", "ssl.endpoint.identification.algorithm": "none",
        ])
        #expect(try properties(.sasl(.scramSHA512(username: "u", password: "p"))) == [
            "security.protocol": "sasl_ssl", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p",
            "ssl.ca.location": "probe", "enable.ssl.certificate.verification": "true", "ssl.endpoint.identification.algorithm": "https",
        ])
        #expect(try properties(.sasl(.plain(username: "u", password: "p"), tls: nil)) == [
            "security.protocol": "sasl_plaintext", "sasl.mechanisms": "PLAIN", "sasl.username": "u", "sasl.password": "p",
        ])
        let oidc = try properties(.sasl(.oauthBearer(clientID: "c", clientSecret: "s", tokenEndpoint: "https://idp/token", scope: "kafka")))
        #expect(oidc["sasl.mechanisms"] == "OAUTHBEARER" && oidc["sasl.oauthbearer.method"] == "oidc")
        #expect(oidc["sasl.oauthbearer.token.endpoint.url"] == "https://idp/token" && oidc["sasl.oauthbearer.scope"] == "kafka")
    }

    @Test("Settings that cannot work are refused when the client is made, naming what is wrong")
    func refusals() throws {
        let refusals: [(KafkaSecurity, String)] = [
            (.tls(.init(trustRoots: .file("/nonexistent/ca.pem"))), "/nonexistent/ca.pem"),
            (.tls(.init(clientCertificate: .files(certificate: "/nonexistent/c.pem", key: "/nonexistent/k.pem"))), "/nonexistent/c.pem"),
            (.sasl(.plain(username: "", password: "p")), "user name"),
            (.sasl(.scramSHA256(username: "u", password: "")), "password"),
            (.sasl(.oauthBearer(clientID: "c", clientSecret: "s", tokenEndpoint: "not a url")), "not a url"),
        ]
        for (security, named) in refusals {
            var configuration = producerConfiguration(KafkaTestCluster.shared)
            configuration.security = security
            let error = #expect(throws: KafkaError.self) { _ = try KafkaProducer(configuration: configuration) }
            #expect(error?.code == .configuration)
            #expect(error?.reason.contains(named) == true, "\(String(describing: error))")
            var consumer = consumerConfiguration(KafkaTestCluster.shared, group: "g", topics: ["t"])
            consumer.security = security
            #expect(throws: KafkaError.self) { _ = try KafkaConsumer(configuration: consumer) }
        }
    }

    @Test("Raw properties still win over the typed settings")
    func rawPropertiesWin() throws {
        var configuration = producerConfiguration(KafkaTestCluster.shared, properties: ["security.protocol": "plaintext"])
        configuration.security = .sasl(.plain(username: "u", password: "p"), tls: nil)
        let resolved = try configuration.rdKafkaProperties()
        #expect(resolved.last { $0.0 == "security.protocol" }?.1 == "plaintext")
    }
}
