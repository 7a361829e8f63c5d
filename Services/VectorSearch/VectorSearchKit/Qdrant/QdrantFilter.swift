import Foundation
import KBProto
import KBRPC

/// Qdrant's JSON filters as the engine's `Filter`:
///
/// - `must` / `should` / `must_not`: a condition or a list of them;
/// - `{"key", "match": {"value"}}` (keyword, integer, boolean), `{"match": {"any": [...]}}`
///   (keywords or integers), `{"match": {"except": [...]}}` (none of them),
///   `{"key", "range": {"gt", "gte", "lt", "lte"}}`;
/// - `{"has_id": [...]}`, `{"is_empty": {"key"}}`, `{"is_null": {"key"}}`, and a nested filter
///   (an object with `must` / `should` / `must_not`).
///
/// Not supported (400 naming the condition): full-text `match.text`, `match.phrase`,
/// `values_count`, geo and datetime conditions, `nested` (arrays of objects), `has_vector`,
/// `min_should`, and keys into nested objects (`a.b` names a top-level field `a.b`).
enum QdrantFilter {
    /// The filter in `value`; 400 naming the path (`filter.must[0].match`) for anything else.
    static func parse(_ value: QdrantJSON, field: String, depth: Int = 0) throws -> Kb_Vector_V1_Filter {
        guard depth < 8 else { throw QdrantError.invalid(field, "filters may nest at most 8 deep") }
        guard case .object(let members) = value else { throw QdrantError.invalid(field, "must be an object with must / should / must_not (found \(value.typeName))") }
        var filter = Kb_Vector_V1_Filter()
        for (key, clause) in members {
            let path = "\(field).\(key)"
            switch key {
            case "must": filter.must = try conditions(clause, field: path, depth: depth)
            case "should": filter.should = try conditions(clause, field: path, depth: depth)
            case "must_not": filter.mustNot = try conditions(clause, field: path, depth: depth)
            case "min_should":
                if clause != .null { throw QdrantError.invalid(path, "is not supported here (use should, which needs one match)") }
            default: throw QdrantError.invalid(path, "is not a filter clause (must, should, must_not)")
            }
        }
        return filter
    }

    /// The filter member of a request, nil when absent or null.
    static func optional(_ value: QdrantJSON?, field: String) throws -> Kb_Vector_V1_Filter? {
        guard let value, value != .null else { return nil }
        return try parse(value, field: field)
    }

    static func conditions(_ value: QdrantJSON, field: String, depth: Int) throws -> [Kb_Vector_V1_Condition] {
        switch value {
        case .null: return []
        case .array(let items): return try items.enumerated().map { try condition($0.element, field: "\(field)[\($0.offset)]", depth: depth) }
        case .object: return [try condition(value, field: field, depth: depth)]
        default: throw QdrantError.invalid(field, "must be a condition or a list of conditions (found \(value.typeName))")
        }
    }

    static func condition(_ value: QdrantJSON, field: String, depth: Int) throws -> Kb_Vector_V1_Condition {
        guard case .object(let given) = value else { throw QdrantError.invalid(field, "must be a condition object (found \(value.typeName))") }
        // Members sent as null (a client serialising every field of its model) are absent.
        let members = given.filter { $0.value != .null }
        var condition = Kb_Vector_V1_Condition()
        if let ids = members["has_id"] {
            condition.hasID_p = .with { $0.values = [] }
            condition.hasID_p.values = try QdrantPointMapping.ids(ids, field: "\(field).has_id")
            return condition
        }
        if let empty = members["is_empty"] {
            condition.isEmpty = try key(empty["key"], field: "\(field).is_empty.key")
            return condition
        }
        if let null = members["is_null"] {
            condition.isNull = try key(null["key"], field: "\(field).is_null.key")
            return condition
        }
        if members["must"] != nil || members["should"] != nil || members["must_not"] != nil {
            condition.filter = try parse(value, field: field, depth: depth + 1)
            return condition
        }
        for unsupported in ["nested", "has_vector"] where members[unsupported] != nil {
            throw QdrantError.invalid("\(field).\(unsupported)", "this condition is not supported by this server (see the README's Qdrant compatibility)")
        }
        guard members["key"] != nil else {
            throw QdrantError.invalid(field, "is not a condition: expected key with match or range, has_id, is_empty, is_null, or a nested filter (found \(members.keys.sorted().joined(separator: ", ")))")
        }
        let name = try key(members["key"], field: "\(field).key")
        let kinds = members.keys.filter { $0 != "key" }
        guard kinds.count == 1 else {
            throw QdrantError.invalid(field, "a field condition needs exactly one of match or range (found \(kinds.sorted().joined(separator: ", ")))")
        }
        switch kinds[0] {
        case "match": return try match(members["match"]!, key: name, field: "\(field).match")
        case "range":
            guard case .object(let bounds) = members["range"]! else { throw QdrantError.invalid("\(field).range", "must be an object with gt, gte, lt, lte") }
            var range = Kb_Vector_V1_RangeCondition()
            range.key = name
            for (bound, limit) in bounds where limit != .null {
                guard let number = limit.number else {
                    throw QdrantError.invalid("\(field).range.\(bound)", "must be a number (found \(limit.typeName); datetime ranges are not supported)")
                }
                switch bound {
                case "gt": range.lower = .with { $0.value = number; $0.inclusive = false }
                case "gte": range.lower = .with { $0.value = number; $0.inclusive = true }
                case "lt": range.upper = .with { $0.value = number; $0.inclusive = false }
                case "lte": range.upper = .with { $0.value = number; $0.inclusive = true }
                default: throw QdrantError.invalid("\(field).range.\(bound)", "is not a bound (gt, gte, lt, lte)")
                }
            }
            guard range.hasLower || range.hasUpper else { throw QdrantError.invalid("\(field).range", "needs gt, gte, lt or lte") }
            condition.range = range
            return condition
        case let other:
            throw QdrantError.invalid("\(field).\(other)", "this condition is not supported by this server (match and range are; see the README's Qdrant compatibility)")
        }
    }

    static func key(_ value: QdrantJSON?, field: String) throws -> String {
        guard case .string(let key)? = value, !key.isEmpty else { throw QdrantError.invalid(field, "must be a payload field name") }
        return key
    }

    static func match(_ value: QdrantJSON, key: String, field: String) throws -> Kb_Vector_V1_Condition {
        guard case .object(let all) = value, case let members = all.filter({ $0.value != .null }), members.count == 1, let (kind, operand) = members.first else {
            throw QdrantError.invalid(field, "must be one of {\"value\": …}, {\"any\": [...]}, {\"except\": [...]}")
        }
        var condition = Kb_Vector_V1_Condition()
        switch kind {
        case "value":
            var match = Kb_Vector_V1_MatchCondition()
            match.key = key
            switch operand {
            case .string(let text): match.value.keyword = text
            case .int(let integer): match.value.integer = integer
            case .bool(let flag): match.value.boolean = flag
            default: throw QdrantError.invalid("\(field).value", "must be a string, an integer or a boolean (found \(operand.typeName))")
            }
            condition.match = match
        case "any", "except":
            let any = try anyCondition(operand, key: key, field: "\(field).\(kind)")
            if kind == "any" {
                condition.any = any
            } else {
                condition.filter = .with { $0.mustNot = [.with { $0.any = any }] }
            }
        case "text", "phrase", "text_any":
            throw QdrantError.invalid("\(field).\(kind)", "full-text matching is not supported here; use match.value for an exact keyword, or the RPC's text_query for BM25")
        default:
            throw QdrantError.invalid("\(field).\(kind)", "is not a match kind (value, any, except)")
        }
        return condition
    }

    static func anyCondition(_ value: QdrantJSON, key: String, field: String) throws -> Kb_Vector_V1_AnyCondition {
        guard case .array(let items) = value else { throw QdrantError.invalid(field, "must be a list of strings or of integers") }
        var any = Kb_Vector_V1_AnyCondition()
        any.key = key
        for (index, item) in items.enumerated() {
            switch item {
            case .string(let text): any.keywords.append(text)
            case .int(let integer): any.integers.append(integer)
            default: throw QdrantError.invalid("\(field)[\(index)]", "must be a string or an integer (found \(item.typeName))")
            }
        }
        // An empty list matches nothing (any) or everything (except): a key no point has, or none.
        if items.isEmpty { any.keywords = ["\u{0}kb:none"] }
        return any
    }
}

/// A failure of a Qdrant-compatible request, answered in Qdrant's error shape
/// (`{"status": {"error": "…"}, "time": …}`) with the HTTP status.
struct QdrantError: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var field: String?

    var description: String { field.map { "\($0): \(message)" } ?? message }

    /// A 400 naming the request field at fault.
    static func invalid(_ field: String, _ message: String) -> QdrantError {
        QdrantError(status: 400, message: message, field: field)
    }

    static func notFound(_ collection: String) -> QdrantError {
        QdrantError(status: 404, message: "Not found: Collection `\(collection)` doesn't exist!")
    }

    /// An engine failure by its code's HTTP meaning (the RPC's field and message kept).
    init(_ error: RPCError) {
        let status: Int = switch error.code {
        case .invalidArgument, .outOfRange: 400
        case .notFound: 404
        case .alreadyExists: 409
        case .failedPrecondition, .aborted: 409
        case .resourceExhausted: 429
        case .unauthenticated: 401
        case .permissionDenied: 403
        case .unimplemented: 501
        case .unavailable, .deadlineExceeded, .cancelled: 503
        case .dataLoss: 500
        default: 500
        }
        var message = error.message
        if let field = error.field, message.hasPrefix("\(field): ") { message = String(message.dropFirst(field.utf8.count + 2)) }
        self.init(status: status, message: message, field: error.field)
    }

    init(status: Int, message: String, field: String? = nil) {
        self.status = status
        self.message = message
        self.field = field
    }
}
