import KBProto
import MCP

/// A tool call that cannot be done as asked; the message says what to change.
struct ToolFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A tool's arguments with typed reads that name the bad field.
struct ToolArguments {
    var tool: String
    var values: [String: Value]

    func invalid(_ field: String, _ rule: String) -> ToolFailure {
        ToolFailure("invalid arguments for \(tool): \(field) \(rule)")
    }

    private func field(_ key: String, _ path: String?) -> String {
        path.map { "\($0).\(key)" } ?? key
    }

    /// The array of objects `key` (required).
    func objects(_ key: String) throws -> [[String: Value]] {
        guard let value = values[key] else { throw invalid(key, "is required (an array of objects)") }
        guard let array = value.arrayValue else { throw invalid(key, "must be an array of objects") }
        return try array.enumerated().map { index, element in
            guard let object = element.objectValue else { throw invalid("\(key)[\(index)]", "must be an object") }
            return object
        }
    }

    /// The string `key` of `object` (required).
    func string(_ object: [String: Value], _ key: String, _ path: String?) throws -> String {
        guard let value = object[key] else { throw invalid(field(key, path), "is required (a string)") }
        guard let text = value.stringValue else { throw invalid(field(key, path), "must be a string") }
        return text
    }

    /// The array of strings `key` of `object` (required).
    func strings(_ object: [String: Value], _ key: String, _ path: String?) throws -> [String] {
        guard let value = object[key] else { throw invalid(field(key, path), "is required (an array of strings)") }
        guard let array = value.arrayValue else { throw invalid(field(key, path), "must be an array of strings") }
        return try array.enumerated().map { index, element in
            guard let text = element.stringValue else { throw invalid("\(field(key, path))[\(index)]", "must be a string") }
            return text
        }
    }

    /// The array of strings `key` of the arguments, if given.
    func optionalStrings(_ key: String) throws -> [String]? {
        guard let value = values[key], value != .null else { return nil }
        return try strings(values, key, nil)
    }

    /// A relation `{from, to, relationType}`.
    func relation(_ object: [String: Value], _ path: String) throws -> Kb_Graph_V1_Relation {
        let from = try string(object, "from", path)
        let to = try string(object, "to", path)
        let type = try string(object, "relationType", path)
        return .with {
            $0.from = from
            $0.to = to
            $0.relationType = type
        }
    }

    /// `limit`: a whole number 1–1000, `fallback` when not given.
    func limit(default fallback: Int) throws -> Int {
        let limit: Int
        switch values["limit"] {
        case nil, .null?: return fallback
        case .int(let value)?: limit = value
        case .double(let value)? where value == value.rounded() && abs(value) < 1e9: limit = Int(value)
        default: throw invalid("limit", "must be a whole number")
        }
        guard (1...1000).contains(limit) else { throw invalid("limit", "must be 1–1000 (got \(limit))") }
        return limit
    }
}
