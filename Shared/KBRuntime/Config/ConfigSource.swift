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
        if let path = environment["KB_CONFIG_FILE"], !path.isEmpty {
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

    /// `key` as a string, or `defaultValue` when unset.
    public func string(_ key: String, default defaultValue: String) -> String {
        string(key) ?? defaultValue
    }

    /// `key` as an integer within `range`, or `defaultValue` when unset.
    public func integer(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw = string(key) else { return defaultValue }
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigError(key: key, "'\(raw)' is not a whole number")
        }
        guard range.contains(value) else {
            throw ConfigError(key: key, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// `key` as a TCP port (1–65535, or 0 for "any free port" when `allowZero`).
    public func port(_ key: String, default defaultValue: Int, allowZero: Bool = true) throws -> Int {
        do {
            return try integer(key, default: defaultValue, range: (allowZero ? 0 : 1)...65535)
        } catch let error as ConfigError {
            throw ConfigError(key: key, "\(error.message); expected a TCP port (1-65535\(allowZero ? ", or 0 for any free port" : ""))")
        }
    }

    /// `key` as one of `choices` (case-insensitive), or `defaultValue` when unset.
    public func choice(_ key: String, default defaultValue: String, from choices: [String]) throws -> String {
        guard let raw = string(key) else { return defaultValue }
        let lowered = raw.lowercased()
        guard choices.contains(lowered) else {
            throw ConfigError(key: key, "'\(raw)' is not one of \(choices.joined(separator: ", "))")
        }
        return lowered
    }
}
