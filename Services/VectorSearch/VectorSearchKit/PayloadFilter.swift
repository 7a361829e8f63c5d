import Foundation
import KBProto
import KBRPC

/// A point's payload: field name → value.
public typealias Payload = [String: Kb_Vector_V1_PayloadValue]

/// Qdrant-style payload filters: every `must` condition, at least one `should` (when there are
/// any), no `must_not`. Conditions: `match` (a keyword, integer or boolean equals the field, or is
/// one of a keyword list's values), `range` (a numeric field within bounds), `any` (the field, or
/// any of its values, is one of the given keywords or integers), `has_id`, `is_empty` (missing,
/// null or an empty list), `is_null`, and nested filters.
public struct PayloadFilter: Sendable {
    let filter: Kb_Vector_V1_Filter
    /// The same filter with its `has_id` lists as sets of id bytes: a long list (the indexer's
    /// resynchronisation sends every entity's id) costs one lookup per point, not a scan.
    let compiled: Compiled

    /// Checks `filter`; an empty condition or a bad range is `INVALID_ARGUMENT` naming it.
    public init(_ filter: Kb_Vector_V1_Filter, field: String = "filter") throws {
        try Self.check(filter, field: field, depth: 0)
        self.filter = filter
        compiled = Compiled(filter)
    }

    /// A filter whose `has_id` conditions are sets (ids compared as bytes, as `sameBytes` does).
    final class Compiled: Sendable {
        enum Condition: Sendable {
            case plain(Kb_Vector_V1_Condition)
            case ids(Set<[UInt8]>)
            case nested(Compiled)
        }
        let must: [Condition], should: [Condition], mustNot: [Condition]

        init(_ filter: Kb_Vector_V1_Filter) {
            func compile(_ condition: Kb_Vector_V1_Condition) -> Condition {
                switch condition.kind {
                case .hasID_p(let ids): .ids(Set(ids.values.map { Array($0.utf8) }))
                case .filter(let nested): .nested(Compiled(nested))
                default: .plain(condition)
                }
            }
            must = filter.must.map(compile)
            should = filter.should.map(compile)
            mustNot = filter.mustNot.map(compile)
        }

        func matches(id: String, payload: Payload) -> Bool {
            func holds(_ condition: Condition) -> Bool {
                switch condition {
                case .plain(let plain): PayloadFilter.holds(plain, id: id, payload: payload)
                case .ids(let ids): ids.contains(Array(id.utf8))
                case .nested(let nested): nested.matches(id: id, payload: payload)
                }
            }
            for condition in must where !holds(condition) { return false }
            for condition in mustNot where holds(condition) { return false }
            if !should.isEmpty && !should.contains(where: holds) { return false }
            return true
        }
    }

    static func check(_ filter: Kb_Vector_V1_Filter, field: String, depth: Int) throws {
        guard depth < 8 else { throw RPCError.invalidArgument(field: field, reason: .tooMany, "filters may nest at most 8 deep") }
        for (name, conditions) in [("must", filter.must), ("should", filter.should), ("must_not", filter.mustNot)] {
            for (index, condition) in conditions.enumerated() {
                let path = "\(field).\(name)[\(index)]"
                switch condition.kind {
                case .match(let match):
                    guard !match.key.isEmpty else { throw RPCError.invalidArgument(field: "\(path).match.key", reason: .required, "is required") }
                    switch match.value.kind {
                    case .keyword, .integer, .boolean: break
                    default: throw RPCError.invalidArgument(field: "\(path).match.value", reason: .invalidFormat, "must be a keyword, an integer or a boolean")
                    }
                case .range(let range):
                    guard !range.key.isEmpty else { throw RPCError.invalidArgument(field: "\(path).range.key", reason: .required, "is required") }
                    guard range.hasLower || range.hasUpper else { throw RPCError.invalidArgument(field: "\(path).range", reason: .required, "needs a lower or an upper bound") }
                    guard !range.hasLower || range.lower.value.isFinite, !range.hasUpper || range.upper.value.isFinite else {
                        throw RPCError.invalidArgument(field: "\(path).range", reason: .outOfRange, "bounds must be finite")
                    }
                case .any(let any):
                    guard !any.key.isEmpty else { throw RPCError.invalidArgument(field: "\(path).any.key", reason: .required, "is required") }
                    guard !any.keywords.isEmpty || !any.integers.isEmpty else { throw RPCError.invalidArgument(field: "\(path).any", reason: .required, "needs keywords or integers") }
                case .hasID_p:
                    break
                case .filter(let nested):
                    try check(nested, field: "\(path).filter", depth: depth + 1)
                case .isEmpty(let key), .isNull(let key):
                    guard !key.isEmpty else { throw RPCError.invalidArgument(field: path, reason: .required, "names no field") }
                case nil:
                    throw RPCError.invalidArgument(field: path, reason: .required, "is empty")
                }
            }
        }
    }

    /// Whether the point with `id` and `payload` passes.
    public func matches(id: String, payload: Payload) -> Bool {
        compiled.matches(id: id, payload: payload)
    }

    static func matches(_ filter: Kb_Vector_V1_Filter, id: String, payload: Payload) -> Bool {
        for condition in filter.must where !holds(condition, id: id, payload: payload) { return false }
        for condition in filter.mustNot where holds(condition, id: id, payload: payload) { return false }
        if !filter.should.isEmpty && !filter.should.contains(where: { holds($0, id: id, payload: payload) }) { return false }
        return true
    }

    static func holds(_ condition: Kb_Vector_V1_Condition, id: String, payload: Payload) -> Bool {
        switch condition.kind {
        case .match(let match):
            guard let value = payload[match.key] else { return false }
            switch (match.value.kind, value.kind) {
            // Keywords compare as bytes: `String ==` takes "équipe" in NFC and in NFD for one
            // value, and a team filter must never let another team's points through.
            case (.keyword(let wanted), .keyword(let have)): return sameBytes(wanted, have)
            case (.keyword(let wanted), .keywords(let list)): return list.values.contains { sameBytes(wanted, $0) }
            case (.keyword(let wanted), .text(let have)): return sameBytes(wanted, have)
            case (.integer(let wanted), .integer(let have)): return wanted == have
            case (.integer(let wanted), .float(let have)): return Double(wanted) == have
            case (.boolean(let wanted), .boolean(let have)): return wanted == have
            default: return false
            }
        case .range(let range):
            guard let value = payload[range.key] else { return false }
            let number: Double
            switch value.kind {
            case .integer(let integer): number = Double(integer)
            case .float(let float): number = float
            default: return false
            }
            if range.hasLower && (range.lower.inclusive ? number < range.lower.value : number <= range.lower.value) { return false }
            if range.hasUpper && (range.upper.inclusive ? number > range.upper.value : number >= range.upper.value) { return false }
            return true
        case .any(let any):
            guard let value = payload[any.key] else { return false }
            switch value.kind {
            case .keyword(let keyword): return any.keywords.contains { sameBytes($0, keyword) }
            case .keywords(let list): return list.values.contains { have in any.keywords.contains { sameBytes($0, have) } }
            case .integer(let integer): return any.integers.contains(integer)
            default: return false
            }
        case .hasID_p(let ids):
            return ids.values.contains { sameBytes($0, id) }
        case .filter(let nested):
            return matches(nested, id: id, payload: payload)
        case .isEmpty(let key):
            switch payload[key]?.kind {
            case nil: return true
            case .keywords(let list): return list.values.isEmpty
            case .json(let json): return json == "null" || json.filter { !$0.isWhitespace } == "[]"
            default: return false
            }
        case .isNull(let key):
            if case .json(let json)? = payload[key]?.kind { return json == "null" }
            return false
        case nil:
            return false
        }
    }

    /// Whether two keywords are the same bytes (never canonical equivalence).
    static func sameBytes(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    /// `(field, value)` pairs every matching point must have (from `must` keyword/integer/bool
    /// matches), for estimating how selective the filter is from the keyword index.
    var requiredTerms: [(String, String)] {
        filter.must.compactMap { condition in
            guard case .match(let match) = condition.kind else { return nil }
            return (match.key, Self.term(match.value))
        }
    }

    /// The index term of a keyword, integer or boolean value.
    static func term(_ value: Kb_Vector_V1_PayloadValue) -> String {
        switch value.kind {
        case .keyword(let keyword): "k:" + keyword
        case .integer(let integer): "i:" + String(integer)
        case .boolean(let boolean): boolean ? "b:1" : "b:0"
        default: ""
        }
    }
}

/// BM25 over one text payload field (k1 = 1.2, b = 0.75): words are runs of letters and digits,
/// lower-cased.
final class KeywordIndex {
    private var postings: [String: [UInt32: Int]] = [:]
    private var lengths: [UInt32: Int] = [:]
    private var totalLength = 0

    static func words(_ text: String) -> [String] {
        text.lowercased().split { !$0.isLetter && !$0.isNumber }.map(String.init)
    }

    func add(_ node: UInt32, text: String) {
        let words = Self.words(text)
        guard !words.isEmpty else { return }
        var counts: [String: Int] = [:]
        for word in words { counts[word, default: 0] += 1 }
        for (word, count) in counts { postings[word, default: [:]][node] = count }
        lengths[node] = words.count
        totalLength += words.count
    }

    func remove(_ node: UInt32, text: String) {
        guard let length = lengths.removeValue(forKey: node) else { return }
        totalLength -= length
        for word in Set(Self.words(text)) {
            postings[word]?.removeValue(forKey: node)
            if postings[word]?.isEmpty == true { postings.removeValue(forKey: word) }
        }
    }

    /// BM25 scores of the documents holding any query word, best first, at most `limit`.
    func search(_ query: String, limit: Int, accept: (UInt32) -> Bool) -> [(node: UInt32, score: Float)] {
        let documents = Double(lengths.count)
        guard documents > 0 else { return [] }
        let average = Double(totalLength) / documents
        var scores: [UInt32: Double] = [:]
        for word in Set(Self.words(query)) {
            guard let posting = postings[word] else { continue }
            let idf = log(1 + (documents - Double(posting.count) + 0.5) / (Double(posting.count) + 0.5))
            for (node, frequency) in posting where accept(node) {
                let tf = Double(frequency)
                let length = Double(lengths[node] ?? 0)
                scores[node, default: 0] += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / average))
            }
        }
        return scores.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .prefix(limit).map { ($0.key, Float($0.value)) }
    }
}
