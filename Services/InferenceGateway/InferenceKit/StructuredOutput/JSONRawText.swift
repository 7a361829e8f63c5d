import Foundation

/// The text of one value inside a JSON document, exactly as it was written — object keys in the
/// writer's order, numbers and escapes untouched — found by a key path through nested objects.
///
/// `JSONValue` (a dictionary per object) forgets key order; a JSON Schema's property order is
/// the order a model is asked to write them in, so the OpenAI front hands the schema on as the
/// caller wrote it. For a document that already parsed as JSON; any surprise answers nil.
enum JSONRawText {
    /// The value at `path` (object keys from the top; the last of duplicate keys, as parsers
    /// keep), or nil when there is none.
    static func value(in document: Data, at path: [String]) -> String? {
        var scanner = Scanner(bytes: [UInt8](document))
        return scanner.find(path[...])
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func find(_ path: ArraySlice<String>) -> String? {
            skipSpace()
            guard let key = path.first else {
                let start = index
                guard skipValue() else { return nil }
                return String(decoding: bytes[start..<index], as: UTF8.self)
            }
            guard current == UInt8(ascii: "{") else { return nil }
            index += 1
            var found: String?
            while true {
                skipSpace()
                if current == UInt8(ascii: "}") {
                    index += 1
                    return found
                }
                guard let name = readString() else { return nil }
                skipSpace()
                guard current == UInt8(ascii: ":") else { return nil }
                index += 1
                skipSpace()
                if name == key {
                    let start = index
                    found = find(path.dropFirst())
                    index = start
                }
                guard skipValue() else { return nil }
                skipSpace()
                switch current {
                case UInt8(ascii: ",")?: index += 1
                case UInt8(ascii: "}")?:
                    index += 1
                    return found
                default: return nil
                }
            }
        }

        /// Steps over one string (at its opening quote); false when it does not end.
        mutating func skipString() -> Bool {
            guard current == UInt8(ascii: "\"") else { return false }
            index += 1
            while let byte = current {
                index += 1
                if byte == UInt8(ascii: "\\") {
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    return true
                }
            }
            return false
        }

        /// A string's value (escapes decoded by Foundation's parser).
        mutating func readString() -> String? {
            let start = index
            guard skipString() else { return nil }
            let token = bytes[start..<index]
            if !token.contains(UInt8(ascii: "\\")) { return String(decoding: token.dropFirst().dropLast(), as: UTF8.self) }
            return try? JSONDecoder().decode(String.self, from: Data(token))
        }

        /// Steps over one value of any kind; false on malformed text.
        mutating func skipValue() -> Bool {
            switch current {
            case UInt8(ascii: "\"")?:
                return skipString()
            case UInt8(ascii: "{")?, UInt8(ascii: "[")?:
                var depth = 0
                while let byte = current {
                    switch byte {
                    case UInt8(ascii: "\""):
                        guard skipString() else { return false }
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            return true
                        }
                    default: break
                    }
                    index += 1
                }
                return false
            case nil:
                return false
            default:
                // A number, true, false or null: up to the next delimiter.
                let start = index
                while let byte = current, !(byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]")
                    || byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D) { index += 1 }
                return index > start
            }
        }
    }
}
