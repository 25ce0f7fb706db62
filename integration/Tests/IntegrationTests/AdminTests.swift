import Foundation
import Testing
import TracedKafka
import TracedKafkaTesting

/// The admin client against the running broker: Tansu answers every admin request; librdkafka's mock answers
/// metadata only (its CreateTopics and DeleteTopics are never answered).
@Suite("The admin client against the running broker")
struct AdminIntegrationTests {
    var broker: String { ProcessInfo.processInfo.environment["INTEGRATION_BROKER"] ?? "mock" }

    @Test("Create, describe, list, refuse a second create, delete — or, on the mock, a timeout a caller can act on")
    func topics() async throws {
        let admin = try KafkaAdminClient(configuration: KafkaAdminConfiguration(bootstrapServers: Integration.bootstrapServerList))
        let name = "it-\(Integration.runID)-admin"
        guard broker == "tansu" else {
            let error = await #expect(throws: KafkaError.self) { try await admin.createTopic(name, partitions: 2, timeout: .seconds(3)) }
            #expect(error?.code == .timedOut)
            let existing = try await Integration.topic("admin-existing", partitions: 2)
            #expect(try await admin.listTopics().contains(existing))
            #expect(try await admin.describeTopic(existing).partitions.count >= 2)
            return
        }
        try await admin.createTopic(name, partitions: 3, configs: ["retention.ms": "3600000"])
        let description = try await admin.describeTopic(name)
        #expect(description.partitions.map(\.id) == [0, 1, 2])
        #expect(try await admin.listTopics().contains(name))
        let again = await #expect(throws: KafkaError.self) { try await admin.createTopic(name, partitions: 3) }
        #expect(again?.code == .topicAlreadyExists)
        try await admin.deleteTopic(name)
        let gone = await #expect(throws: KafkaError.self) { _ = try await admin.describeTopic(name) }
        #expect(gone?.code == .unknownPartition)
        await admin.close()
    }
}
