/// A configuration value that cannot be used. The service exits at once with this message.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The key at fault, e.g. `KB_GRAPH_STORE_PORT`.
    public let key: String
    /// What is wrong and what would be right.
    public let message: String

    /// Creates an error about `key`.
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "configuration error: \(key): \(message)" }
}
