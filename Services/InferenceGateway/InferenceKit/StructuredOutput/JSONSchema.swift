import Foundation

/// The subset of JSON Schema the gateway checks answers against: `type` (a name or a list),
/// `properties`, `required`, `additionalProperties` (a boolean or a schema), `items`, `enum`,
/// `minimum`/`maximum` and their `exclusive` forms, `minItems`/`maxItems`,
/// `minLength`/`maxLength`; annotations (`title`, `description`, `$schema`, `$id`, `default`,
/// `examples`, `format`) are read past. A schema with any other keyword is refused when it is
/// built (a keyword the gateway cannot check would let a wrong answer through as valid).
public struct JSONSchema: Sendable, Equatable {
    /// Allowed types (empty: any).
    var types: [String] = []
    var properties: [(name: String, schema: JSONSchema)] = []
    var required: [String] = []
    /// What properties not in `properties` may be: anything, nothing, or what a schema allows.
    var additional: AdditionalProperties = .anything
    var items: Box?
    var allowed: [JSONValue]?
    var minimum: Double?, maximum: Double?, exclusiveMinimum: Double?, exclusiveMaximum: Double?
    var minItems: Int?, maxItems: Int?, minLength: Int?, maxLength: Int?

    enum AdditionalProperties: Sendable, Equatable {
        case anything, nothing
        case schema(Box)
    }

    /// A schema behind a reference (the type is recursive).
    final class Box: Sendable, Equatable {
        let schema: JSONSchema
        init(_ schema: JSONSchema) { self.schema = schema }
        static func == (left: Box, right: Box) -> Bool { left.schema == right.schema }
    }

    public static func == (left: JSONSchema, right: JSONSchema) -> Bool {
        left.types == right.types && left.properties.map(\.name) == right.properties.map(\.name)
            && zip(left.properties, right.properties).allSatisfy { $0.schema == $1.schema } && left.required == right.required
            && left.additional == right.additional && left.items == right.items && left.allowed == right.allowed
            && left.minimum == right.minimum && left.maximum == right.maximum && left.exclusiveMinimum == right.exclusiveMinimum
            && left.exclusiveMaximum == right.exclusiveMaximum && left.minItems == right.minItems && left.maxItems == right.maxItems
            && left.minLength == right.minLength && left.maxLength == right.maxLength
    }

    /// Why a schema cannot be used: where in it (`properties.items.type`) and what is wrong.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public let path: String
        public let problem: String
        public var description: String { path.isEmpty ? problem : "\(path): \(problem)" }
    }

    static let typeNames: Set<String> = ["null", "boolean", "number", "integer", "string", "array", "object"]
    static let annotations: Set<String> = ["title", "description", "$schema", "$id", "default", "examples", "format", "$comment"]

    /// Builds the schema from its JSON (an object; `true` and `{}` accept anything).
    public init(_ value: JSONValue, path: String = "") throws {
        guard case .object(let object) = value else {
            if case .bool(true) = value { return }
            throw Invalid(path: path, problem: "a schema must be a JSON object (found \(value.brief))")
        }
        func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        func count(_ key: String) throws -> Int? {
            guard let value = object[key] else { return nil }
            guard case .number(let number) = value, number >= 0, number == number.rounded(), number < 1e9 else {
                throw Invalid(path: at(key), problem: "must be a non-negative integer (found \(value.brief))")
            }
            return Int(number)
        }
        func bound(_ key: String) throws -> Double? {
            guard let value = object[key] else { return nil }
            guard case .number(let number) = value else { throw Invalid(path: at(key), problem: "must be a number (found \(value.brief))") }
            return number
        }
        for key in object.keys.sorted() {
            switch key {
            case "type":
                switch object[key]! {
                case .string(let name): types = [name]
                case .array(let names):
                    types = try names.map { name in
                        guard case .string(let text) = name else { throw Invalid(path: at(key), problem: "must be a type name or a list of them") }
                        return text
                    }
                default: throw Invalid(path: at(key), problem: "must be a type name or a list of them")
                }
                if let unknown = types.first(where: { !Self.typeNames.contains($0) }) {
                    throw Invalid(path: at(key), problem: "unknown type \(unknown.debugDescription) (known: \(Self.typeNames.sorted().joined(separator: ", ")))")
                }
            case "properties":
                guard case .object(let entries) = object[key]! else { throw Invalid(path: at(key), problem: "must be an object of schemas") }
                properties = try entries.keys.sorted().map { name in (name: name, schema: try JSONSchema(entries[name]!, path: at("properties.\(name)"))) }
            case "required":
                guard case .array(let names) = object[key]! else { throw Invalid(path: at(key), problem: "must be a list of property names") }
                required = try names.map { name in
                    guard case .string(let text) = name else { throw Invalid(path: at(key), problem: "must be a list of property names") }
                    return text
                }
            case "additionalProperties":
                switch object[key]! {
                case .bool(let allowed): additional = allowed ? .anything : .nothing
                case let schema: additional = .schema(Box(try JSONSchema(schema, path: at(key))))
                }
            case "items":
                items = Box(try JSONSchema(object[key]!, path: at(key)))
            case "enum":
                guard case .array(let values) = object[key]!, !values.isEmpty else { throw Invalid(path: at(key), problem: "must be a non-empty list of values") }
                allowed = values
            case "minimum": minimum = try bound(key)
            case "maximum": maximum = try bound(key)
            case "exclusiveMinimum": exclusiveMinimum = try bound(key)
            case "exclusiveMaximum": exclusiveMaximum = try bound(key)
            case "minItems": minItems = try count(key)
            case "maxItems": maxItems = try count(key)
            case "minLength": minLength = try count(key)
            case "maxLength": maxLength = try count(key)
            case let annotation where Self.annotations.contains(annotation):
                continue
            default:
                throw Invalid(path: at(key), problem: "the gateway cannot check the keyword \(key.debugDescription) (it checks type, properties, required, additionalProperties, items, enum, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minItems, maxItems, minLength, maxLength)")
            }
        }
    }

    /// The first way `value` breaks the schema (`items[2].confidence: must be at most 1 (found
    /// 1.5)`), or nil when it matches.
    public func violation(of value: JSONValue, at path: String = "") -> String? {
        func here(_ problem: String) -> String { path.isEmpty ? problem : "\(path): \(problem)" }
        if !types.isEmpty {
            let actual = value.typeName
            let matches = types.contains(actual) || (actual == "integer" && types.contains("number"))
            if !matches { return here("must be \(types.joined(separator: " or ")) (found \(value.brief))") }
        }
        if let allowed, !allowed.contains(value) {
            return here("must be one of \(allowed.map(\.brief).joined(separator: ", ")) (found \(value.brief))")
        }
        switch value {
        case .number(let number):
            if let minimum, number < minimum { return here("must be at least \(JSONValue.number(minimum).brief) (found \(value.brief))") }
            if let maximum, number > maximum { return here("must be at most \(JSONValue.number(maximum).brief) (found \(value.brief))") }
            if let exclusiveMinimum, number <= exclusiveMinimum { return here("must be more than \(JSONValue.number(exclusiveMinimum).brief) (found \(value.brief))") }
            if let exclusiveMaximum, number >= exclusiveMaximum { return here("must be less than \(JSONValue.number(exclusiveMaximum).brief) (found \(value.brief))") }
        case .string(let text):
            if let minLength, text.count < minLength { return here("must be at least \(minLength) characters long (found \(text.count))") }
            if let maxLength, text.count > maxLength { return here("must be at most \(maxLength) characters long (found \(text.count))") }
        case .array(let elements):
            if let minItems, elements.count < minItems { return here("must hold at least \(minItems) items (found \(elements.count))") }
            if let maxItems, elements.count > maxItems { return here("must hold at most \(maxItems) items (found \(elements.count))") }
            if let items {
                for (index, element) in elements.enumerated() {
                    if let problem = items.schema.violation(of: element, at: "\(path)[\(index)]") { return problem }
                }
            }
        case .object(let fields):
            for name in required where fields[name] == nil {
                return here("the property \(name.debugDescription) is required")
            }
            for (name, schema) in properties {
                guard let field = fields[name] else { continue }
                if let problem = schema.violation(of: field, at: path.isEmpty ? name : "\(path).\(name)") { return problem }
            }
            let known = Set(properties.map(\.name))
            for name in fields.keys.sorted() where !known.contains(name) {
                switch additional {
                case .anything: continue
                case .nothing: return here("the property \(name.debugDescription) is not allowed (additionalProperties is false)")
                case .schema(let box):
                    if let problem = box.schema.violation(of: fields[name]!, at: path.isEmpty ? name : "\(path).\(name)") { return problem }
                }
            }
        case .null, .bool:
            break
        }
        return nil
    }

    /// Whether OpenAI's strict mode takes the schema as it is: the root an object, every object
    /// closed (`additionalProperties: false`) with all its properties required, and no string
    /// length bounds (which strict mode refuses).
    var fitsOpenAIStrictMode: Bool {
        func fits(_ schema: JSONSchema) -> Bool {
            if schema.minLength != nil || schema.maxLength != nil { return false }
            if schema.types.contains("object") || !schema.properties.isEmpty {
                guard schema.additional == .nothing, Set(schema.required) == Set(schema.properties.map(\.name)) else { return false }
            }
            if case .schema = schema.additional { return false }
            if let items = schema.items, !fits(items.schema) { return false }
            return schema.properties.allSatisfy { fits($0.schema) }
        }
        return types == ["object"] && fits(self)
    }
}
