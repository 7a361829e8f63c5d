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
    /// A number with a fraction or an exponent as read, when no quick exact `Double` exists
    /// (e.g. `0.10000000149011612`: 17 digits). Vector components become `Float`s from it
    /// without strtod's multi-precision path (see `float`); `number` gives the exact `Double`.
    case decimal(QdrantDecimal)
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
    public var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .uint(let value): Double(value)
        case .double(let value): value
        case .decimal(let value): value.double
        case .float(let value): Double(value)
        default: nil
        }
    }

    /// The value as a `Float` (integers included): `Float(number)`, the same value, read
    /// quicker for `.decimal`.
    public var float: Float? {
        if case .decimal(let value) = self { return value.float }
        return number.map { Float($0) }
    }

    /// The JSON type's name, for error messages.
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .uint: "an integer"
        case .double, .decimal, .float: "a number"
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
        case .decimal(let value): out += "\(value.double)"
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
            if isFloat, let decimal = QdrantDecimal(bytes[start..<position]) {
                if let exact = decimal.quickExactDouble { return .double(exact) }
                // At most 19 digits: only an exponent past 289 can leave Double's range.
                guard decimal.exponent <= 289 || decimal.double.isFinite else {
                    let text = String(decoding: bytes[start..<position], as: UTF8.self)
                    position = start
                    throw error("'\(text)' is out of range")
                }
                return .decimal(decimal)
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

/// A JSON number with a fraction or an exponent, as `mantissa × 10^exponent` (at most 19
/// significant digits, so the mantissa is exact in `UInt64`).
public struct QdrantDecimal: Sendable, Equatable {
    /// The significant digits.
    public var mantissa: UInt64
    /// The power of ten.
    public var exponent: Int
    /// Whether a `-` came first.
    public var negative: Bool

    /// Reads a number already checked against JSON's grammar; nil when it has more than 19
    /// significant digits or an exponent beyond ±9999 (strtod reads those).
    init?(_ text: ArraySlice<UInt8>) {
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        var index = text.startIndex
        negative = text[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        var afterPoint = false
        while index < text.endIndex {
            let byte = text[index]
            if byte == UInt8(ascii: ".") {
                afterPoint = true
            } else if byte >= 0x30 && byte <= 0x39 {
                if mantissa != 0 || byte != 0x30 {
                    guard digits < 19 else { return nil }
                    mantissa = mantissa * 10 + UInt64(byte - 0x30)
                    digits += 1
                }
                if afterPoint { exponent -= 1 }
            } else {
                break
            }
            index += 1
        }
        if index < text.endIndex {
            // [eE][+-]?digits
            index += 1
            var sign = 1
            if text[index] == UInt8(ascii: "-") { sign = -1; index += 1 } else if text[index] == UInt8(ascii: "+") { index += 1 }
            var power = 0
            while index < text.endIndex {
                power = power * 10 + Int(text[index] - 0x30)
                guard power <= 9999 else { return nil }
                index += 1
            }
            exponent += sign * power
        }
        self.mantissa = mantissa
        self.exponent = exponent
    }

    /// Powers of ten that are exact doubles.
    private static let powers: [Double] = (0...22).map { (0..<$0).reduce(1.0) { value, _ in value * 10 } }

    /// The exact double when the mantissa and the power of ten are both exact doubles (one
    /// correctly rounded multiplication or division: Clinger's fast path); nil otherwise.
    var quickExactDouble: Double? {
        guard mantissa <= 1 << 53, (-22...22).contains(exponent) else { return nil }
        let value = exponent >= 0 ? Double(mantissa) * Self.powers[exponent] : Double(mantissa) / Self.powers[-exponent]
        return negative ? -value : value
    }

    /// The correctly rounded double (strtod).
    public var double: Double {
        Double("\(negative ? "-" : "")\(mantissa)e\(exponent)") ?? .nan
    }

    /// `Float(double)`, found without strtod when possible: a double within 2 ulps of the value
    /// (two roundings), which gives the same `Float` unless it lies within 8 ulps of a point
    /// halfway between two floats (then, or for huge, tiny and subnormal values, strtod decides).
    public var float: Float {
        guard mantissa != 0 else { return negative ? -0.0 : 0.0 }
        if (-44...44).contains(exponent) {
            var approximate = Double(mantissa)
            var power = exponent
            while power > 0 { let step = min(power, 22); approximate *= Self.powers[step]; power -= step }
            while power < 0 { let step = min(-power, 22); approximate /= Self.powers[step]; power += step }
            let candidate = Float(approximate)
            if candidate.isNormal, candidate.nextUp.isFinite, candidate.nextDown.isNormal {
                let tolerance = 8 * approximate.ulp
                let below = (Double(candidate) + Double(candidate.nextDown)) / 2
                let above = (Double(candidate) + Double(candidate.nextUp)) / 2
                if approximate - below > tolerance, above - approximate > tolerance { return negative ? -candidate : candidate }
            }
        }
        return Float(double)
    }
}
