import Foundation
import KBProto
import KBRPC

/// How Qdrant's point ids, vectors and payloads map onto the engine's points.
///
/// Ids: Qdrant allows an unsigned 64-bit integer or a UUID. An integer is stored as its decimal
/// text (`7` → `"7"`), a UUID in its canonical form (lower case, hyphenated), so the same point
/// is the same id over RPC. Reading back, a decimal id (no leading zero) is answered as an
/// integer, anything else as a string (ids written over RPC keep their text).
///
/// Payload values: strings are keywords (the collection's text field, `text` by default, is
/// text: BM25 indexes it), integers, floats, booleans, lists of strings are keyword lists; any
/// other JSON (objects, lists of numbers, null) is kept as JSON, returned as given, and seen by
/// filters only through `is_empty` / `is_null`.
enum QdrantPointMapping {
    // MARK: Ids

    /// The engine's id for a Qdrant point id; 400 naming `field` for anything else.
    static func id(_ value: QdrantJSON, field: String) throws -> String {
        switch value {
        case .int(let number) where number >= 0: return String(number)
        case .uint(let number): return String(number)
        case .string(let text):
            if let uuid = canonicalUUID(text) { return uuid }
            throw QdrantError.invalid(field, "'\(text)' is neither an unsigned integer nor a UUID (Qdrant's two kinds of point id)")
        default:
            throw QdrantError.invalid(field, "a point id must be an unsigned integer or a UUID string (found \(value.typeName)\(value.number.map { " \($0)" } ?? ""))")
        }
    }

    /// A list of ids (`points: [...]`, `ids: [...]`, `has_id: [...]`).
    static func ids(_ value: QdrantJSON?, field: String) throws -> [String] {
        guard case .array(let items)? = value else { throw QdrantError.invalid(field, "must be a list of point ids") }
        return try items.enumerated().map { try id($0.element, field: "\(field)[\($0.offset)]") }
    }

    /// `text` as a lower-case hyphenated UUID, when it is one (hyphenated, 32 hex digits,
    /// braced, or `urn:uuid:`).
    static func canonicalUUID(_ text: String) -> String? {
        var hex = text.lowercased()
        if hex.hasPrefix("urn:uuid:") { hex.removeFirst(9) }
        if hex.hasPrefix("{") && hex.hasSuffix("}") { hex = String(hex.dropFirst().dropLast()) }
        if hex.count == 36 {
            let dashes = [8, 13, 18, 23]
            for (index, character) in hex.enumerated() where dashes.contains(index) != (character == "-") { return nil }
            hex.removeAll { $0 == "-" }
        }
        guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else { return nil }
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }

    /// The Qdrant form of an engine id: an integer when it is a plain decimal number.
    static func json(id: String) -> QdrantJSON {
        if let first = id.utf8.first, first != UInt8(ascii: "0") || id.utf8.count == 1, id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let number = UInt64(id) {
            return number <= UInt64(Int64.max) ? .int(Int64(number)) : .uint(number)
        }
        return .string(id)
    }

    /// Qdrant's order of ids (scroll): integers by value first, then the others by their text.
    static func precedes(_ a: String, _ b: String) -> Bool {
        switch (json(id: a), json(id: b)) {
        case (.int(let x), .int(let y)): x < y
        case (.int, .uint): true
        case (.uint, .int): false
        case (.uint(let x), .uint(let y)): x < y
        case (.int, _), (.uint, _): true
        case (_, .int), (_, .uint): false
        default: a.utf8.lexicographicallyPrecedes(b.utf8)
        }
    }

    // MARK: Vectors

    /// A dense vector: a list of numbers, or Qdrant's `{"name": "", "vector": [...]}` and
    /// `{"": [...]}` forms for the unnamed vector (named vectors are not supported).
    static func vector(_ value: QdrantJSON?, field: String) throws -> [Float] {
        switch value {
        case .array(let items)?:
            var vector: [Float] = []
            vector.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                guard let float = item.float else { throw QdrantError.invalid("\(field)[\(index)]", "must be a number (found \(item.typeName))") }
                guard float.isFinite else { throw QdrantError.invalid("\(field)[\(index)]", "must be a finite number") }
                vector.append(float)
            }
            guard !vector.isEmpty else { throw QdrantError.invalid(field, "must hold at least one number") }
            return vector
        case .object(let members)?:
            if members.count == 1, let unnamed = members[""] { return try vector(unnamed, field: "\(field).\"\"") }
            if case .string(let name)? = members["name"], let inner = members["vector"] {
                guard name.isEmpty else { throw QdrantError.invalid("\(field).name", "named vectors are not supported: a collection here has one unnamed vector (found '\(name)')") }
                return try vector(inner, field: "\(field).vector")
            }
            let names = members.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw QdrantError.invalid(field, "named and sparse vectors are not supported: a collection here has one unnamed vector (found \(names))")
        case nil:
            throw QdrantError.invalid(field, "is required")
        case let other?:
            throw QdrantError.invalid(field, "must be a list of numbers (found \(other.typeName))")
        }
    }

    // MARK: Payloads

    /// A Qdrant payload object as the engine's payload; `textField` names the field stored as text.
    static func payload(_ value: QdrantJSON?, field: String, textField: String) throws -> Payload {
        switch value {
        case nil, .null?: return [:]
        case .object(let members)?:
            var payload: Payload = [:]
            for (key, member) in members {
                guard !key.isEmpty, key.utf8.count <= 128 else { throw QdrantError.invalid(field, "field names must be 1-128 bytes (found '\(key.prefix(40))')") }
                payload[key] = payloadValue(member, text: key == textField)
            }
            return payload
        case let other?:
            throw QdrantError.invalid(field, "must be an object (found \(other.typeName))")
        }
    }

    static func payloadValue(_ value: QdrantJSON, text: Bool) -> Kb_Vector_V1_PayloadValue {
        var out = Kb_Vector_V1_PayloadValue()
        switch value {
        case .string(let string): if text { out.text = string } else { out.keyword = string }
        case .int(let integer): out.integer = integer
        case .double(let number): out.float = number
        case .decimal(let number): out.float = number.double
        case .bool(let flag): out.boolean = flag
        case .array(let items) where items.allSatisfy({ if case .string = $0 { true } else { false } }) && !items.isEmpty:
            var values: [String] = []
            for case .string(let text) in items { values.append(text) }
            out.keywords = .with { $0.values = values }
        default: out.json = value.serialized
        }
        return out
    }

    /// The engine's payload as a Qdrant payload object, with only the `keys` asked for (nil: all).
    static func json(payload: Payload, keys: PayloadSelection) -> QdrantJSON {
        var members: [String: QdrantJSON] = [:]
        for (key, value) in payload where keys.includes(key) {
            switch value.kind {
            case .keyword(let text), .text(let text): members[key] = .string(text)
            case .integer(let integer): members[key] = .int(integer)
            case .float(let number): members[key] = .double(number)
            case .boolean(let flag): members[key] = .bool(flag)
            case .keywords(let list): members[key] = .array(list.values.map { .string($0) })
            case .json(let text): members[key] = (try? QdrantJSON.parse(Array(text.utf8))) ?? .string(text)
            case nil: continue
            }
        }
        return .object(members)
    }

    /// Which payload fields an answer carries (`with_payload`: a boolean, a list of keys, or
    /// `{"include": [...]}` / `{"exclude": [...]}`).
    enum PayloadSelection {
        case none, all
        case include(Set<String>)
        case exclude(Set<String>)

        var wanted: Bool { if case .none = self { false } else { true } }

        func includes(_ key: String) -> Bool {
            switch self {
            case .none: false
            case .all: true
            case .include(let keys): keys.contains(key)
            case .exclude(let keys): !keys.contains(key)
            }
        }

        /// Reads `with_payload`; `fallback` when it is absent.
        init(_ value: QdrantJSON?, field: String, fallback: PayloadSelection) throws {
            switch value {
            case nil, .null?: self = fallback
            case .bool(let flag)?: self = flag ? .all : .none
            case .array?: self = .include(Set(try Self.keys(value, field: field)))
            case .object(let members)? where members.keys.count == 1 && (members["include"] != nil || members["exclude"] != nil):
                if let include = members["include"] { self = .include(Set(try Self.keys(include, field: "\(field).include"))) } else { self = .exclude(Set(try Self.keys(members["exclude"], field: "\(field).exclude"))) }
            case let other?:
                throw QdrantError.invalid(field, "must be a boolean, a list of field names, or {\"include\": [...]} / {\"exclude\": [...]} (found \(other.typeName))")
            }
        }

        static func keys(_ value: QdrantJSON?, field: String) throws -> [String] {
            guard case .array(let items)? = value else { throw QdrantError.invalid(field, "must be a list of field names") }
            return try items.enumerated().map { index, item in
                guard case .string(let key) = item else { throw QdrantError.invalid("\(field)[\(index)]", "must be a field name (found \(item.typeName))") }
                return key
            }
        }
    }

    /// Reads `with_vector`: a boolean, or a list of vector names (only the unnamed one, `""`).
    static func withVector(_ value: QdrantJSON?, field: String, fallback: Bool) throws -> Bool {
        switch value {
        case nil, .null?: return fallback
        case .bool(let flag)?: return flag
        case .array(let names)?: return names.contains(.string(""))
        case let other?: throw QdrantError.invalid(field, "must be a boolean or a list of vector names (found \(other.typeName))")
        }
    }

    /// A point as Qdrant's `Record` (retrieve, scroll).
    static func record(_ point: Kb_Vector_V1_Point, payload selection: PayloadSelection, withVector: Bool) -> QdrantJSON {
        var members: [String: QdrantJSON] = ["id": json(id: point.id)]
        members["payload"] = selection.wanted ? json(payload: point.payload, keys: selection) : .null
        members["vector"] = withVector ? .array(point.vector.map { .float($0) }) : .null
        return .object(members)
    }

    /// A search hit as Qdrant's `ScoredPoint`.
    static func scoredPoint(_ hit: Kb_Vector_V1_ScoredPoint, payload selection: PayloadSelection, withVector: Bool) -> QdrantJSON {
        var members: [String: QdrantJSON] = ["id": json(id: hit.point.id), "version": .int(0), "score": .double(Double(hit.score))]
        members["payload"] = selection.wanted ? json(payload: hit.point.payload, keys: selection) : .null
        members["vector"] = withVector ? .array(hit.point.vector.map { .float($0) }) : .null
        return .object(members)
    }
}
