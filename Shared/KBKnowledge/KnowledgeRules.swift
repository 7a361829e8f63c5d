import KBProto
import KBRPC

/// A piece of knowledge that breaks a rule of the data model (docs/ARCHITECTURE.md §5).
///
/// `field` is a path into the request or file (`entities[3].name`), `rule` says what the value
/// must be, `reason` which rule in a word a program can switch on; services turn it into
/// `INVALID_ARGUMENT` carrying all three, the CLI prints it as one line.
public struct KnowledgeRuleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Where the bad value is, e.g. `entities[3].name`.
    public var field: String
    /// What the value must be.
    public var rule: String
    /// Which rule it broke, machine-readable (`RPCError.Reason`); services send it in the status.
    public var reason: RPCError.Reason?

    /// An error at `field` breaking `rule`, for `reason`.
    public init(field: String, reason: RPCError.Reason? = nil, _ rule: String) {
        self.field = field
        self.reason = reason
        self.rule = rule
    }

    public var description: String { "\(field): \(rule)" }
}

/// The rules every entity, relation and team name obeys, checked by the graph store before it
/// writes anything and by clients (the `ukb import` pre-check) before they send anything.
public enum KnowledgeRules {
    /// Longest entity name.
    public static let maxNameLength = 200
    /// Longest entity type, relation type or team name.
    public static let maxTypeLength = 100
    /// Longest observation content, in bytes of UTF-8.
    public static let maxObservationBytes = 64 * 1024
    /// Most observations on one entity.
    public static let maxObservations = 10_000

    /// Entity names: 1–200 characters, letters, digits, space, `_ - .`, not starting or ending
    /// with a space.
    public static func checkName(_ name: String, field: String) throws(KnowledgeRuleError) {
        // The common case, plain ASCII, without Unicode property lookups.
        let utf8 = name.utf8
        if utf8.count >= 1, utf8.count <= maxNameLength, utf8.first != 0x20, utf8.last != 0x20,
           utf8.allSatisfy({ isASCIINameByte($0) || $0 == 0x20 }) {
            return
        }
        let count = name.count
        guard count >= 1, count <= maxNameLength else {
            throw KnowledgeRuleError(field: field, reason: count == 0 ? .required : .tooLong, "must be 1–\(maxNameLength) characters (got \(count))")
        }
        for character in name where !(character.isLetter || character.isNumber || character == " " || character == "_" || character == "-" || character == ".") {
            throw KnowledgeRuleError(field: field, reason: .nameInvalid, "may hold only letters, digits, space, '_', '-' and '.' (found \(quoted(character)))")
        }
        if name.first == " " || name.last == " " {
            throw KnowledgeRuleError(field: field, reason: .nameInvalid, "must not start or end with a space")
        }
    }

    /// Team names: 1–100 characters, letters, digits, `_ - .` (no `:`, which separates the team
    /// from the entity in a node id).
    public static func checkTeam(_ team: String, field: String = "team") throws(KnowledgeRuleError) {
        let utf8 = team.utf8
        if utf8.count >= 1, utf8.count <= maxTypeLength, utf8.allSatisfy(isASCIINameByte) { return }
        let count = team.count
        guard count >= 1, count <= maxTypeLength else {
            throw KnowledgeRuleError(field: field, reason: count == 0 ? .required : .tooLong, "must be 1–\(maxTypeLength) characters (got \(count))")
        }
        for character in team where !(character.isLetter || character.isNumber || character == "_" || character == "-" || character == ".") {
            throw KnowledgeRuleError(field: field, reason: .nameInvalid, "may hold only letters, digits, '_', '-' and '.' (found \(quoted(character)))")
        }
    }

    /// ASCII letters, digits, `_`, `-`, `.`.
    private static func isASCIINameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || byte == 0x2D || byte == 0x2E
    }

    /// Entity and relation types: 1–100 characters, printable (no control characters).
    public static func checkType(_ type: String, field: String) throws(KnowledgeRuleError) {
        let utf8 = type.utf8
        if utf8.count >= 1, utf8.count <= maxTypeLength, utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return }
        let count = type.count
        guard count >= 1, count <= maxTypeLength else {
            throw KnowledgeRuleError(field: field, reason: count == 0 ? .required : .tooLong, "must be 1–\(maxTypeLength) characters (got \(count))")
        }
        try checkPrintable(type, field: field)
    }

    /// Significance: 1–10, or 0 for "unset".
    public static func checkSignificance(_ value: Int32, field: String) throws(KnowledgeRuleError) {
        guard (0...10).contains(value) else { throw KnowledgeRuleError(field: field, reason: .outOfRange, "must be 1–10 (got \(value))") }
    }

    /// Confidence: in (0, 1], or 0 for "unset".
    public static func checkConfidence(_ value: Double, field: String) throws(KnowledgeRuleError) {
        guard value.isFinite, value >= 0, value <= 1 else { throw KnowledgeRuleError(field: field, reason: .outOfRange, "must be a number in (0, 1] (got \(value))") }
    }

    /// An entity as sent for an upsert. `isUpdate` relaxes the entity type, which an update may
    /// leave empty to keep the stored one.
    public static func check(_ entity: Kb_Graph_V1_Entity, field: String, isUpdate: Bool = false) throws(KnowledgeRuleError) {
        try checkName(entity.name, field: "\(field).name")
        if !(isUpdate && entity.entityType.isEmpty) {
            try checkType(entity.entityType, field: "\(field).entity_type")
        }
        try checkSignificance(entity.significance, field: "\(field).significance")
        try checkConfidence(entity.confidence, field: "\(field).confidence")
        if case .UNRECOGNIZED(let raw) = entity.source {
            throw KnowledgeRuleError(field: "\(field).source", reason: .unknownValue, "must be manual or auto (got \(raw))")
        }
        guard entity.observations.count <= maxObservations else {
            throw KnowledgeRuleError(field: "\(field).observations", reason: .tooMany, "at most \(maxObservations) observations (got \(entity.observations.count))")
        }
        for (index, observation) in entity.observations.enumerated() {
            let path = "\(field).observations[\(index)]"
            guard !observation.content.isEmpty else { throw KnowledgeRuleError(field: "\(path).content", reason: .required, "must not be empty") }
            guard observation.content.utf8.count <= maxObservationBytes else {
                throw KnowledgeRuleError(field: "\(path).content", reason: .tooLong, "at most \(maxObservationBytes) bytes (got \(observation.content.utf8.count))")
            }
            try checkPrintable(observation.content, field: "\(path).content", allowLineBreaks: true)
            try checkPrintable(observation.type, field: "\(path).type")
            try checkMetadata(observation.metadata, field: "\(path).metadata")
        }
        guard entity.createdAtMs >= 0, entity.lastModifiedMs >= 0 else {
            throw KnowledgeRuleError(field: "\(field).created_at_ms", reason: .outOfRange, "timestamps must not be negative")
        }
        try checkMetadata(entity.metadata, field: "\(field).metadata")
    }

    /// A relation as sent for an insert or a delete.
    public static func check(_ relation: Kb_Graph_V1_Relation, field: String) throws(KnowledgeRuleError) {
        try checkName(relation.from, field: "\(field).from")
        try checkName(relation.to, field: "\(field).to")
        try checkType(relation.relationType, field: "\(field).relation_type")
        try checkSignificance(relation.significance, field: "\(field).significance")
        try checkConfidence(relation.confidence, field: "\(field).confidence")
        guard relation.createdAtMs >= 0 else { throw KnowledgeRuleError(field: "\(field).created_at_ms", reason: .outOfRange, "must not be negative") }
        try checkMetadata(relation.metadata, field: "\(field).metadata")
    }

    /// Metadata keys are non-empty and printable.
    public static func checkMetadata(_ metadata: [String: String], field: String) throws(KnowledgeRuleError) {
        for key in metadata.keys {
            guard !key.isEmpty else { throw KnowledgeRuleError(field: field, reason: .required, "keys must not be empty") }
            try checkPrintable(key, field: "\(field).\(key)")
        }
    }

    private static func checkPrintable(_ text: String, field: String, allowLineBreaks: Bool = false) throws(KnowledgeRuleError) {
        // Printable ASCII needs no Unicode property lookups.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return }
        for scalar in text.unicodeScalars where scalar.properties.generalCategory == .control {
            if allowLineBreaks, scalar == "\n" || scalar == "\r" || scalar == "\t" { continue }
            throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must not contain control characters (found U+\(String(scalar.value, radix: 16, uppercase: true)))")
        }
    }

    private static func quoted(_ character: Character) -> String {
        if character.unicodeScalars.allSatisfy({ $0.properties.generalCategory != .control }) { return "'\(character)'" }
        return character.unicodeScalars.map { "U+\(String($0.value, radix: 16, uppercase: true))" }.joined()
    }
}
