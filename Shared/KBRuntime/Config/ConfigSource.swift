import Foundation

/// Where configuration values come from: environment variables first, then an optional file of
/// `KEY=VALUE` lines named by `KB_CONFIG_FILE` (blank lines and `#` comments ignored).
public struct ConfigSource: Sendable {
    /// The values, environment over file.
    public let values: [String: String]

    /// Reads the process environment and, if it names one, the config file.
    public static func fromProcess() throws -> ConfigSource {
        try ConfigSource(environment: ProcessInfo.processInfo.environment)
    }

    /// Reads `environment` and, if it names one in `KB_CONFIG_FILE`, the config file.
    public init(environment: [String: String]) throws {
        var merged: [String: String] = [:]
        if let path = environment[ServiceConfiguration.Keys.configFile.name], !path.isEmpty {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigError(key: "KB_CONFIG_FILE", "cannot read '\(path)'")
            }
            for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let equals = line.firstIndex(of: "=") else {
                    throw ConfigError(key: "KB_CONFIG_FILE", "\(path):\(number + 1): expected KEY=VALUE, got '\(line)'")
                }
                let key = line[..<equals].trimmingCharacters(in: .whitespaces)
                var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                merged[key] = value
            }
        }
        merged.merge(environment) { _, fromEnvironment in fromEnvironment }
        values = merged
    }

    /// The raw value of `key`, nil when unset or empty.
    public func string(_ key: String) -> String? {
        guard let value = values[key], !value.isEmpty else { return nil }
        return value
    }
}
