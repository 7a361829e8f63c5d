import Foundation

extension JSONValue {
    /// Parses JSON text (RFC 8259: any value at the top, whitespace around it); nil when it is
    /// not JSON — a syntax error, a string that is not UTF-8 or holds a lone surrogate or a raw
    /// control character, nesting deeper than 512, or anything after the value. The last of
    /// duplicate object keys wins. A hand-written recursive descent over the bytes: the gateway
    /// reads every provider answer and stream chunk with it, where Foundation's `JSONDecoder`
    /// (its generic `Codable` path) was a tenth of the request's CPU.
    public static func parse<Bytes: Collection<UInt8>>(bytes: Bytes) -> JSONValue? {
        func run(_ buffer: UnsafeBufferPointer<UInt8>) -> JSONValue? {
            var parser = JSONBytesParser(buffer)
            return parser.document()
        }
        if let parsed = bytes.withContiguousStorageIfAvailable(run) { return parsed }
        return [UInt8](bytes).withUnsafeBufferPointer(run)
    }

    /// `parse(bytes:)`, and the text of the value at `path` (object keys from the top; the last
    /// of duplicate keys, as in the tree) exactly as it was written — key order, spacing, numbers
    /// and escapes untouched. The text is nil when there is no such value, or when it repeats a
    /// key inside (a reader keeping the first of them would see another value than the tree).
    /// `JSONValue`'s objects forget key order; the OpenAI front hands a JSON Schema on with it.
    static func parse<Bytes: Collection<UInt8>>(bytes: Bytes, keepingTextAt path: [String]) -> (value: JSONValue, text: String?)? {
        func run(_ buffer: UnsafeBufferPointer<UInt8>) -> (value: JSONValue, text: String?)? {
            var parser = JSONBytesParser(buffer, capturing: path)
            guard let value = parser.document() else { return nil }
            guard let captured = parser.captured, !captured.duplicateKeys else { return (value, nil) }
            return (value, String(decoding: UnsafeBufferPointer(rebasing: buffer[captured.range]), as: UTF8.self))
        }
        if let parsed = bytes.withContiguousStorageIfAvailable(run) { return parsed }
        return [UInt8](bytes).withUnsafeBufferPointer(run)
    }
}

extension JSONValue {
    /// The value when it is a string, else nil (and so on for each kind).
    var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    var numberValue: Double? { if case .number(let value) = self { value } else { nil } }
    var boolValue: Bool? { if case .bool(let value) = self { value } else { nil } }
    var arrayValue: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    var objectValue: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
}

/// The parser behind `JSONValue.parse(bytes:)`.
private struct JSONBytesParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var depth = 0
    /// How many times an object repeated a key (the last one is kept).
    var duplicateKeys = 0
    static let maximumDepth = 512
    /// The object keys to the value whose text is wanted (nil: none); the keys from the top to
    /// the value being read (nil for an array's level); where the wanted value was found.
    let target: [String]?
    var keys: [String?] = []
    var captured: (range: Range<Int>, duplicateKeys: Bool)?

    init(_ bytes: UnsafeBufferPointer<UInt8>, capturing target: [String]? = nil) {
        self.bytes = bytes
        self.target = target
    }

    mutating func document() -> JSONValue? {
        skipSpace()
        guard let value = value() else { return nil }
        skipSpace()
        return index == bytes.count ? value : nil
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func value() -> JSONValue? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) -> JSONValue? {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { return nil }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return nil }
        index += count
        return value
    }

    private mutating func object() -> JSONValue? {
        guard depth < Self.maximumDepth else { return nil }
        depth += 1
        defer { depth -= 1 }
        index += 1
        var fields: [String: JSONValue] = [:]
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(fields)
        }
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else { return nil }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            let start = index, repeatsBefore = duplicateKeys
            if target != nil { keys.append(key) }
            guard let item = value() else { return nil }
            if let target {
                if keys.count == target.count, zip(keys, target).allSatisfy({ $0 == $1 }) {
                    captured = (start..<index, duplicateKeys > repeatsBefore)
                }
                keys.removeLast()
            }
            if fields.updateValue(item, forKey: key) != nil { duplicateKeys += 1 }
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(fields)
            } else {
                return nil
            }
        }
    }

    private mutating func array() -> JSONValue? {
        guard depth < Self.maximumDepth else { return nil }
        depth += 1
        defer { depth -= 1 }
        index += 1
        var items: [JSONValue] = []
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        if target != nil { keys.append(nil) }
        defer { if target != nil { keys.removeLast() } }
        while true {
            skipSpace()
            guard let item = value() else { return nil }
            items.append(item)
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            } else {
                return nil
            }
        }
    }

    /// A string at its opening quote.
    private mutating func string() -> String? {
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { return nil }
            index += 1
        }
        guard index < bytes.count else { return nil }
        var decoded = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(validating: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { return nil }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard bytes.count - index >= 2, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { return nil }
                        index += 2
                        guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        return nil
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    decoded.append(contentsOf: UTF8.encode(unicode)!)
                default:
                    return nil
                }
            default:
                if byte < 0x20 { return nil }
                decoded.append(byte)
                index += 1
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard bytes.count - index >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// A number, checked against JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    private mutating func number() -> JSONValue? {
        let start = index
        func digits() -> Int {
            let first = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - first
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return nil }
        var whole: Int64 = 0
        let integerStart = index
        let integerDigits = digits()
        guard integerDigits > 0, !(integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0")) else { return nil }
        var simple = integerDigits <= 15
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return nil }
            simple = false
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { return nil }
            simple = false
        }
        if simple {
            for offset in integerStart..<(integerStart + integerDigits) { whole = whole * 10 + Int64(bytes[offset] - UInt8(ascii: "0")) }
            return .number(Double(bytes[start] == UInt8(ascii: "-") ? -whole : whole))
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { return nil }
        return .number(value)
    }
}
