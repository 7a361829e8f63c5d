import Foundation

/// One configuration key, declared once: its name, its default, what it means and how its text
/// becomes a value. `ConfigSource.value(of:)` reads it; a bad value becomes a `ConfigError` that
/// names the key, and the README's configuration table is checked against `documentation`.
public struct ConfigKey<Value: Sendable>: Sendable {
    /// The environment variable, e.g. `KB_BUDGET_RESERVATION_TTL_SECONDS`.
    public let name: String
    /// The value when the key is unset (or empty).
    public let defaultValue: Value
    /// The default as the README shows it, in Markdown (`` `300` ``, `unset`, `built in`).
    public let documentedDefault: String
    /// What the key changes, one sentence for an operator.
    public let meaning: String
    private let parser: @Sendable (String) throws -> Value

    /// Declares a key with its own parser; `parse` throws `InvalidConfigValue` saying what would be right.
    public init(
        _ name: String,
        default defaultValue: Value,
        documentedDefault: String? = nil,
        meaning: String,
        parse: @escaping @Sendable (String) throws -> Value
    ) {
        self.name = name
        self.defaultValue = defaultValue
        self.documentedDefault = documentedDefault ?? "`\(defaultValue)`"
        self.meaning = meaning
        self.parser = parse
    }

    /// The key's name, default and meaning, for the README's configuration table.
    public var documentation: ConfigKeyDocumentation {
        ConfigKeyDocumentation(name: name, documentedDefault: documentedDefault, meaning: meaning)
    }

    /// Parses `raw` (already known to be set), naming this key when it is bad.
    public func parse(_ raw: String) throws -> Value {
        do {
            return try parser(raw)
        } catch let error as InvalidConfigValue {
            throw ConfigError(key: name, error.message)
        } catch {
            throw ConfigError(key: name, "\(error)")
        }
    }
}

/// Why a configuration value cannot be used: the message says what was given and what would be
/// right; the loader adds the key's name.
public struct InvalidConfigValue: Error, Sendable {
    /// What is wrong and what would be right.
    public let message: String

    /// A problem with a value.
    public init(_ message: String) { self.message = message }
}

/// A key's name, default and meaning: one row of the README's configuration table.
public struct ConfigKeyDocumentation: Sendable, Hashable {
    /// The environment variable (or a pattern such as `KB_<SERVICE>_PORT`).
    public let name: String
    /// The default as shown to people.
    public let documentedDefault: String
    /// What the key changes.
    public let meaning: String

    /// Documents a key.
    public init(name: String, documentedDefault: String, meaning: String) {
        self.name = name
        self.documentedDefault = documentedDefault
        self.meaning = meaning
    }

    /// The key's row in the README's configuration table (Markdown).
    public var markdownRow: String { "| `\(name)` | \(documentedDefault) | \(meaning) |" }
}

/// A configuration struct whose keys are declared as `ConfigKey`s: services (`BudgetConfiguration`,
/// `VKBConfiguration`, …) and the settings every service shares (`ServiceConfiguration`).
public protocol DeclaredConfiguration: Sendable {
    /// Every key the struct reads, in the order the README lists them.
    static var keys: [ConfigKeyDocumentation] { get }
}

/// A service's own configuration: read from the same source as the shared settings, after them.
public protocol ServiceOwnConfiguration: DeclaredConfiguration {
    /// Reads and checks the keys; the error names the first bad one.
    init(source: ConfigSource, shared: ServiceConfiguration) throws
}

// MARK: - Parsers

extension ConfigKey where Value == String {
    /// Any text.
    public static func text(_ name: String, default defaultValue: String, documentedDefault: String? = nil, meaning: String) -> ConfigKey {
        ConfigKey(name, default: defaultValue, documentedDefault: documentedDefault, meaning: meaning) { raw in raw }
    }

    /// One of `choices`, compared case-insensitively and kept in lower case.
    public static func choice(_ name: String, default defaultValue: String, from choices: [String], meaning: String) -> ConfigKey {
        ConfigKey(name, default: defaultValue, meaning: meaning) { raw in
            let lowered = raw.lowercased()
            guard choices.contains(lowered) else { throw InvalidConfigValue("'\(raw)' is not one of \(choices.joined(separator: ", "))") }
            return lowered
        }
    }
}

extension ConfigKey where Value == String? {
    /// Optional text: nil when unset.
    public static func optionalText(_ name: String, documentedDefault: String = "unset", meaning: String) -> ConfigKey {
        ConfigKey(name, default: nil, documentedDefault: documentedDefault, meaning: meaning) { raw in raw }
    }
}

extension ConfigKey where Value == Int {
    /// A whole number within `range`.
    public static func integer(_ name: String, default defaultValue: Int, range: ClosedRange<Int>, meaning: String) -> ConfigKey {
        ConfigKey(name, default: defaultValue, meaning: meaning) { raw in
            try parseInteger(raw, range: range)
        }
    }

    /// A TCP port: 1–65535, or 0 for "any free port" when `allowZero`.
    public static func port(_ name: String, default defaultValue: Int, documentedDefault: String? = nil, allowZero: Bool = true, meaning: String) -> ConfigKey {
        ConfigKey(name, default: defaultValue, documentedDefault: documentedDefault, meaning: meaning) { raw in
            do {
                return try parseInteger(raw, range: (allowZero ? 0 : 1)...65535)
            } catch let error as InvalidConfigValue {
                throw InvalidConfigValue("\(error.message); expected a TCP port (1-65535\(allowZero ? ", or 0 for any free port" : ""))")
            }
        }
    }

    static func parseInteger(_ raw: String, range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw InvalidConfigValue("'\(raw)' is not a whole number")
        }
        guard range.contains(value) else {
            throw InvalidConfigValue("\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}

extension ConfigKey where Value == Double {
    /// A finite number above `minimumExclusive` and at most `maximum`, e.g. an amount of dollars.
    public static func number(_ name: String, default defaultValue: Double, above minimumExclusive: Double, atMost maximum: Double, unit: String, meaning: String) -> ConfigKey {
        ConfigKey(name, default: defaultValue, meaning: meaning) { raw in
            guard let value = Double(raw.trimmingCharacters(in: .whitespaces)), value.isFinite, value > minimumExclusive, value <= maximum else {
                throw InvalidConfigValue("'\(raw)' is not \(unit) above \(minimumExclusive.formatted()) and at most \(maximum.formatted())")
            }
            return value
        }
    }
}

extension Double {
    fileprivate func formatted() -> String {
        rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}

extension ConfigSource {
    /// The generic loader: `key`'s value, its default when unset, or a `ConfigError` naming it.
    public func value<Value>(of key: ConfigKey<Value>) throws -> Value {
        guard let raw = string(key.name) else { return key.defaultValue }
        return try key.parse(raw)
    }
}
