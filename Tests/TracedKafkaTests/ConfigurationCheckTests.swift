import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// Mistakes in a configuration are caught when the client is made, named as the user wrote them.
@Suite("Configuration mistakes are caught at init, named as written")
struct ConfigurationCheckTests {
    static func producerError(bootstrap: [String], properties: [String: String] = [:]) -> KafkaError? {
        #expect(throws: KafkaError.self) {
            try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: bootstrap, properties: properties))
        }
    }

    @Test(
        "A bootstrap server without a host or a valid port is refused on every client, by the entry as written",
        arguments: [
            ("localhost", "has no port"), ("localhost:notaport", "has no valid port"), ("localhost:0", "has no valid port"),
            ("localhost:70000", "has no valid port"), (":9092", "has no host"), ("[::1]", "has no port"),
            ("PLAINTEXT://broker", "has no port"),
        ]
    )
    func badBootstrapServer(entry: String, problem: String) throws {
        let producer = Self.producerError(bootstrap: ["good:9092", entry])
        #expect(producer?.code == .configuration)
        #expect(producer?.reason.hasPrefix("Bootstrap server \(String(reflecting: entry)) \(problem)") == true)
        let consumer = #expect(throws: KafkaError.self) {
            try KafkaConsumer(configuration: KafkaConsumerConfiguration(bootstrapServers: [entry], groupID: "g", topics: ["t"]))
        }
        #expect(consumer?.reason.contains(String(reflecting: entry)) == true)
        let admin = #expect(throws: KafkaError.self) { try KafkaAdminClient(configuration: KafkaAdminConfiguration(bootstrapServers: [entry])) }
        #expect(admin?.reason.contains(String(reflecting: entry)) == true)
    }

    @Test("No group is nil: an empty group id is refused, a consumer of given partitions has none by default", arguments: TestBackend.allCases)
    func groupIDIsOptional(backend: TestBackend) throws {
        var member = consumerConfiguration(backend, group: "g", topics: ["t"])
        member.groupID = ""
        let error = #expect(throws: KafkaError.self) { try KafkaConsumer(configuration: member) }
        #expect(error?.code == .configuration && error?.reason.contains("group id is empty") == true)
        let reader = KafkaConsumerConfiguration(bootstrapServers: ["localhost:9092"], partitions: [KafkaPartitionStart(topic: "t", partition: 0)])
        #expect(reader.groupID == nil)
    }

    @Test("Bootstrap servers as librdkafka takes them are accepted: IPv6, a protocol, several in one string")
    func goodBootstrapServers() throws {
        for servers in [["[::1]:9092"], ["PLAINTEXT://127.0.0.1:9092"], ["a.example:9092, b.example:9093"], ["h:1", " ", "h:65535"]] {
            _ = try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: servers))
        }
    }

    @Test("A raw property librdkafka refuses is named by the key and value the user wrote, not librdkafka's alias")
    func rawPropertyNamedAsWritten() {
        let error = Self.producerError(bootstrap: ["localhost:9092"], properties: ["linger.ms": "five"])
        #expect(error?.code == .configuration)
        #expect(error?.reason.hasPrefix(#"Property "linger.ms" = "five" is refused: "#) == true, "\(String(describing: error))")
    }

    @Test("The raw transactional.id and group.id are refused: the clients must know them, from their typed fields")
    func rawIdentities() {
        let error = Self.producerError(bootstrap: ["localhost:9092"], properties: ["transactional.id": "billing"])
        #expect(error?.code == .configuration)
        #expect(error?.reason.contains("transactionalID") == true)
        let consumer = #expect(throws: KafkaError.self) {
            try KafkaConsumer(configuration: KafkaConsumerConfiguration(
                bootstrapServers: ["localhost:9092"], groupID: "g", topics: ["t"], properties: ["group.id": "other"]
            ))
        }
        #expect(consumer?.reason.contains("groupID") == true)
    }

    @Test(
        "A raw message.max.bytes wins over maxMessageBytes for the producer's own check too, and a record at that limit is delivered",
        arguments: TestBackend.allCases
    )
    func rawMessageMaxBytesWins(_ backend: TestBackend) async throws {
        let topic = try await backend.newTopic("max-bytes")
        var configuration = producerConfiguration(backend, properties: ["message.max.bytes": "20000"])
        configuration.maxMessageBytes = 1_000
        let producer = try KafkaProducer(configuration: configuration)
        let (report, tooLarge) = try await withRunning(producer) { producer in
            // At the limit: librdkafka, which counts its framing too, must have the same allowance above a raw limit.
            let report = try await producer.send(KafkaProducerRecord(topic: topic, key: "k", value: [UInt8](repeating: 1, count: 19_999)))
            let tooLarge = await #expect(throws: KafkaError.self) {
                try await producer.send(KafkaProducerRecord(topic: topic, value: [UInt8](repeating: 1, count: 20_001)))
            }
            return (report, tooLarge)
        }
        #expect(report.offset == 0)
        #expect(tooLarge?.code == .invalidRecord)
    }
}
