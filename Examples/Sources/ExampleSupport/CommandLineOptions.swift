import Foundation

/// The few `--name value` options the examples take, read from the command line.
///
/// Deliberately tiny: the examples are about Kafka and tracing, not argument parsing.
public struct CommandLineOptions: Sendable {
    /// Arguments that are not `--name value` pairs, in order (for example the pipeline's role).
    public private(set) var positional: [String] = []
    private var values: [String: String] = [:]
    private let usage: String

    /// Reads the arguments; prints `usage` and exits on `-h`/`--help`, and on an unknown or dangling option.
    /// - Parameters:
    ///   - arguments: The arguments, without the program name.
    ///   - options: The option names this program knows, without `--`.
    ///   - usage: What to print for `--help` or a mistake.
    public init(
        _ arguments: some Sequence<String> = CommandLine.arguments.dropFirst(),
        options: Set<String>,
        usage: String
    ) {
        self.usage = usage
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            if argument == "-h" || argument == "--help" {
                print(usage)
                exit(0)
            }
            guard argument.hasPrefix("--") else {
                positional.append(argument)
                continue
            }
            let name = String(argument.dropFirst(2))
            guard options.contains(name) else { fail("unknown option \(argument)") }
            guard let value = iterator.next() else { fail("\(argument) needs a value") }
            values[name] = value
        }
    }

    /// The whole number given as `--name`, or `defaultValue`; exits with the usage when it isn't one.
    /// - Parameters:
    ///   - name: The option's name, without `--`.
    ///   - defaultValue: The value when the option is absent.
    public func int(_ name: String, default defaultValue: Int) -> Int {
        guard let text = values[name] else { return defaultValue }
        guard let value = Int(text), value >= 0 else { fail("--\(name) takes a whole number") }
        return value
    }

    /// The duration in seconds given as `--name` (`0.5` allowed), or `defaultValue`; exits with the usage otherwise.
    /// - Parameters:
    ///   - name: The option's name, without `--`.
    ///   - defaultValue: The value when the option is absent.
    public func seconds(_ name: String, default defaultValue: Duration) -> Duration {
        guard let text = values[name] else { return defaultValue }
        guard let value = Double(text), value >= 0, value < 86_400 else { fail("--\(name) takes a number of seconds") }
        return .milliseconds(Int64(value * 1000))
    }

    /// Prints `message` and the usage to standard error and exits with status 2.
    /// - Parameter message: What was wrong with the command line.
    public func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("\(message)\n\(usage)\n".utf8))
        exit(2)
    }
}
