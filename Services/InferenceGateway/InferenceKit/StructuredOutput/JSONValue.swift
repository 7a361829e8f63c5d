import Foundation

/// A parsed JSON value, typed: booleans are never numbers, numbers never booleans (which
/// `JSONSerialization`'s `NSNumber` cannot promise), so a schema's `type` is checked exactly.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text (any value at the top, as RFC 8259 allows); nil when it is not JSON.
    public static func parse(_ text: String) -> JSONValue? {
        parse(bytes: text.utf8)
    }

    /// The value as compact JSON text, object keys sorted.
    var text: String {
        var json = JSONWriter()
        write(to: &json)
        return json.text
    }

    private func write(to json: inout JSONWriter) {
        switch self {
        case .null: json.null()
        case .bool(let value): json.bool(value)
        case .number(let value): json.number(value)
        case .string(let value): json.string(value)
        case .array(let items): json.array { json in for item in items { item.write(to: &json) } }
        case .object(let fields):
            json.object { json in
                for name in fields.keys.sorted() { json.field(name) { fields[name]!.write(to: &$0) } }
            }
        }
    }

    /// The JSON Schema type name of the value (`integer` for whole numbers).
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number(let value): value == value.rounded() && value.isFinite ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// A short form for error messages.
    var brief: String {
        switch self {
        case .null: "null"
        case .bool(let value): String(value)
        case .number(let value): value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
        case .string(let value): value.count > 40 ? String(value.prefix(40)).debugDescription + "…" : value.debugDescription
        case .array(let items): "an array of \(items.count)"
        case .object: "an object"
        }
    }
}
