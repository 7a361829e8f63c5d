import Foundation

/// A JSON value as Qdrant's REST API sends and reads it. Integers are kept apart from floats
/// (a point id `7` and a payload `7` stay integers; `7.5` is a float), which Foundation's
/// `JSONSerialization` does not promise on Linux.
public indirect enum QdrantJSON: Sendable, Equatable {
    /// JSON's `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A whole number that fits `Int64`.
    case int(Int64)
    /// A whole number above `Int64.max` (point ids are unsigned 64-bit).
    case uint(UInt64)
    /// A number with a fraction or an exponent.
    case double(Double)
    /// A vector component on its way out, written in `Float`'s shortest form (`0.1`, not
    /// `0.10000000149011612`).
    case float(Float)
    /// A string.
    case string(String)
    /// A list.
    case array([QdrantJSON])
    /// An object; members are written sorted by name.
    case object([String: QdrantJSON])

    /// The member `key` of an object; nil for a missing member or a non-object.
    public subscript(key: String) -> QdrantJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The value as a number (integers included).
    var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .uint(let value): Double(value)
        case .double(let value): value
        case .float(let value): Double(value)
        default: nil
        }
    }

    /// The JSON type's name, for error messages.
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .uint: "an integer"
        case .double, .float: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    // MARK: Writing

    /// The value as compact JSON text (object members sorted by name).
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .uint(let value): out += String(value)
        case .double(let value): out += value.isFinite ? "\(value)" : "null"
        case .float(let value): out += value.isFinite ? "\(value)" : "null"
        case .string(let value): Self.writeString(value, to: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                Self.writeString(key, to: &out)
                out += ":"
                members[key]!.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: Reading

    /// A JSON text that cannot be read, with the byte offset where reading stopped.
    public struct SyntaxError: Error, CustomStringConvertible {
        /// What is wrong and where.
        public var description: String
    }

    /// Parses one JSON text (nesting at most 64 deep).
    public static func parse<Bytes: Collection>(_ bytes: Bytes) throws -> QdrantJSON where Bytes.Element == UInt8 {
        var parser = Parser(bytes: Array(bytes))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.position == parser.bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ message: String) -> SyntaxError {
            SyntaxError(description: "malformed JSON at byte \(position): \(message)")
        }

        mutating func skipSpace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func expect(_ literal: String, _ value: QdrantJSON) throws -> QdrantJSON {
            let utf8 = Array(literal.utf8)
            guard position + utf8.count <= bytes.count, Array(bytes[position..<position + utf8.count]) == utf8 else { throw error("expected \(literal)") }
            position += utf8.count
            return value
        }

        mutating func value(depth: Int) throws -> QdrantJSON {
            guard depth < 64 else { throw error("nested more than 64 deep") }
            guard position < bytes.count else { throw error("the text ends where a value was expected") }
            switch bytes[position] {
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                position += 1
                var values: [QdrantJSON] = []
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(values) }
                while true {
                    skipSpace()
                    values.append(try value(depth: depth + 1))
                    skipSpace()
                    guard position < bytes.count else { throw error("unterminated list") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    guard bytes[position] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                    position += 1
                    return .array(values)
                }
            case UInt8(ascii: "{"):
                position += 1
                var members: [String: QdrantJSON] = [:]
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                    let key = try string()
                    skipSpace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    position += 1
                    skipSpace()
                    members[key] = try value(depth: depth + 1)
                    skipSpace()
                    guard position < bytes.count else { throw error("unterminated object") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    guard bytes[position] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                    position += 1
                    return .object(members)
                }
            default:
                return try number()
            }
        }

        /// A number by JSON's grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)?`.
        mutating func number() throws -> QdrantJSON {
            let start = position
            func digits() -> Int {
                let from = position
                while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 { position += 1 }
                return position - from
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
            let leading = position
            guard digits() > 0 else { position = start; throw error("expected a value") }
            guard bytes[leading] != 0x30 || position - leading == 1 else { position = start; throw error("a number with a leading zero") }
            var isFloat = false
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                isFloat = true
                guard digits() > 0 else { throw error("expected digits after '.'") }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                isFloat = true
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw error("expected digits in the exponent") }
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if !isFloat {
                if let value = Int64(text) { return .int(value) }
                if let value = UInt64(text) { return .uint(value) }
            }
            guard let value = Double(text), value.isFinite else { position = start; throw error("'\(text)' is out of range") }
            return .double(value)
        }

        mutating func string() throws -> String {
            position += 1
            var runStart = position
            var out = ""
            func flush(_ end: Int) { out += String(decoding: bytes[runStart..<end], as: UTF8.self) }
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    flush(position)
                    position += 1
                    return out
                }
                if byte < 0x20 { throw error("a control character inside a string") }
                if byte == UInt8(ascii: "\\") {
                    flush(position)
                    position += 1
                    guard position < bytes.count else { break }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): out += "\""
                    case UInt8(ascii: "\\"): out += "\\"
                    case UInt8(ascii: "/"): out += "/"
                    case UInt8(ascii: "b"): out += "\u{08}"
                    case UInt8(ascii: "f"): out += "\u{0C}"
                    case UInt8(ascii: "n"): out += "\n"
                    case UInt8(ascii: "r"): out += "\r"
                    case UInt8(ascii: "t"): out += "\t"
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800...0xDBFF).contains(code), position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                            position += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw error("an unpaired surrogate") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = UnicodeScalar(code) else { throw error("an unpaired surrogate") }
                        out.unicodeScalars.append(scalar)
                    default:
                        throw error("an unknown escape")
                    }
                    runStart = position
                    continue
                }
                position += 1
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16) else {
                throw error("\\u needs four hex digits")
            }
            position += 4
            return code
        }
    }
}
