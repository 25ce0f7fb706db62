/// A live member of a file-queue consumer group as the others see it: its id (its member file's name) and what it
/// subscribes to, which its member file holds:
///
/// ```
/// tracedkafka-member 1
/// topic orders
/// topic refunds
/// end 895c46db07c170b7
/// ```
///
/// The last line is the FNV-1a hash of the topic lines, so a file read while its member rewrites it in place (its
/// `flock` must stay on the same inode) is told from a whole one. An empty file is a member of a version that wrote
/// none: it is taken to subscribe to every topic, as it deals every topic it reads over every member.
struct FQMember: Sendable, Equatable {
    /// What a member subscribes to.
    enum Subscription: Sendable, Equatable {
        /// These topics (none: it reads nothing until it subscribes).
        case topics(Set<String>)
        /// Every topic: a member that does not say.
        case everything

        func contains(_ topic: String) -> Bool {
            switch self {
            case .topics(let topics): return topics.contains(topic)
            case .everything: return true
            }
        }
    }

    let id: String
    let subscription: Subscription

    private static let header = "tracedkafka-member 1"

    /// The content of a member file for `topics`.
    static func fileContent(subscribing topics: [String]) -> String {
        let lines = topics.sorted().map { "topic \($0)" }
        return ([header] + lines + ["end \(FQDirectory.hexHash(lines.joined(separator: "\n")))"]).joined(separator: "\n") + "\n"
    }

    /// What a member file says: its subscription, ``Subscription/everything`` for an empty one, `nil` for one caught
    /// half rewritten (or not a member file).
    static func subscription(inFile text: String) -> Subscription? {
        guard !text.isEmpty else { return .everything }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).makeIterator()
        guard lines.next() == Substring(header) else { return nil }
        var topicLines: [Substring] = []
        while let line = lines.next() {
            if line.hasPrefix("end ") {
                // Whatever follows is the tail of a longer content this one replaced.
                guard line.dropFirst(4) == Substring(FQDirectory.hexHash(topicLines.joined(separator: "\n"))) else { return nil }
                return .topics(Set(topicLines.map { String($0.dropFirst(6)) }))
            }
            guard line.hasPrefix("topic ") else { return nil }
            topicLines.append(line)
        }
        return nil
    }
}
