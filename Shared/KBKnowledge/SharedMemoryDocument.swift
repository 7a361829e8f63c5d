import Foundation
import KBProto
import KBRPC
import KBTime

/// The shared-memory JSON file (docs/ARCHITECTURE.md §5): what `ukb export` writes, `ukb import` reads
/// and VKB accepts by drag-and-drop.
///
/// ```json
/// {"entities": [{"name", "entityType", "observations", "significance", "confidence", "source",
///                "team", "metadata", "created_at", "last_modified"}],
///  "relations": [{"from", "to", "relationType", "confidence", "significance", "team",
///                 "metadata", "created_at"}],
///  "metadata": {"team", "total_entities", "total_relations", "last_updated"}}
/// ```
///
/// Observations are strings, or objects `{type, content, date, tags, metadata}` when they carry
/// more than content. Nothing is rescaled or dropped, so export → import → export is identical.
public struct SharedMemoryDocument: Sendable {
    /// The entities, each with its team when the file names one.
    public var entities: [Kb_Graph_V1_Entity]
    /// The relations, `{from, to, relationType}` plus what they carry.
    public var relations: [Kb_Graph_V1_Relation]
    /// The file's `metadata.team`, if any.
    public var team: String?

    /// A document of `entities` and `relations`.
    public init(entities: [Kb_Graph_V1_Entity] = [], relations: [Kb_Graph_V1_Relation] = [], team: String? = nil) {
        self.entities = entities
        self.relations = relations
        self.team = team
    }

    // MARK: Reading

    /// Parses and checks a file; the error names the first wrong entry and why
    /// (`entities[12].name: must be 1–200 characters`). Nothing partial is returned.
    public init(json data: Data) throws(KnowledgeRuleError) {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw KnowledgeRuleError(field: "file", reason: .invalidFormat, "is not valid JSON (\(Self.reason(error)))")
        }
        guard let object = root as? [String: Any] else { throw KnowledgeRuleError(field: "file", reason: .invalidFormat, "must be a JSON object with \"entities\" and \"relations\"") }
        let metadata = try Self.object(object["metadata"], field: "metadata") ?? [:]
        team = try Self.string(metadata["team"], field: "metadata.team")
        if let team { try KnowledgeRules.checkTeam(team, field: "metadata.team") }

        let entityList: [Any]
        switch object["entities"] {
        case nil: entityList = []
        case let list as [Any]: entityList = list
        default: throw KnowledgeRuleError(field: "entities", reason: .invalidFormat, "must be an array")
        }
        let relationList: [Any]
        switch object["relations"] {
        case nil, is NSNull: relationList = []
        case let list as [Any]: relationList = list
        default: throw KnowledgeRuleError(field: "relations", reason: .invalidFormat, "must be an array")
        }
        entities = try entityList.enumerated().map { index, raw throws(KnowledgeRuleError) in try Self.entity(raw, field: "entities[\(index)]") }
        relations = try relationList.enumerated().map { index, raw throws(KnowledgeRuleError) in try Self.relation(raw, field: "relations[\(index)]") }
    }

    private static func entity(_ raw: Any, field: String) throws(KnowledgeRuleError) -> Kb_Graph_V1_Entity {
        guard let object = raw as? [String: Any] else { throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be an object") }
        var entity = Kb_Graph_V1_Entity()
        entity.name = try string(object["name"], field: "\(field).name") ?? ""
        entity.entityType = try string(object["entityType"] ?? object["entity_type"] ?? object["type"], field: "\(field).entityType") ?? ""
        if let team = try string(object["team"], field: "\(field).team") {
            try KnowledgeRules.checkTeam(team, field: "\(field).team")
            entity.team = team
        }
        switch object["observations"] {
        case nil, is NSNull: break
        case let list as [Any]:
            entity.observations = try list.enumerated().map { index, raw throws(KnowledgeRuleError) in try observation(raw, field: "\(field).observations[\(index)]") }
        default: throw KnowledgeRuleError(field: "\(field).observations", reason: .invalidFormat, "must be an array")
        }
        entity.significance = try significance(object["significance"], field: "\(field).significance")
        entity.confidence = try confidence(object["confidence"], field: "\(field).confidence")
        if let text = try string(object["source"], field: "\(field).source") {
            guard let source = Kb_Graph_V1_Source(name: text) else {
                throw KnowledgeRuleError(field: "\(field).source", reason: .unknownValue, "must be \"manual\" or \"auto\" (got \"\(text)\")")
            }
            entity.source = source
        }
        entity.metadata = try stringMap(object["metadata"], field: "\(field).metadata")
        entity.createdAtMs = try timestamp(object["created_at"] ?? object["created"] ?? object["createdAt"], field: "\(field).created_at")
        entity.lastModifiedMs = try timestamp(object["last_modified"] ?? object["last_updated"] ?? object["lastModified"] ?? object["updated"], field: "\(field).last_modified")
        try KnowledgeRules.check(entity, field: field)
        return entity
    }

    private static func observation(_ raw: Any, field: String) throws(KnowledgeRuleError) -> Kb_Graph_V1_Observation {
        var observation = Kb_Graph_V1_Observation()
        if let text = raw as? String {
            observation.content = text
            return observation
        }
        guard let object = raw as? [String: Any] else { throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be a string or an object with \"content\"") }
        observation.content = try string(object["content"], field: "\(field).content") ?? ""
        observation.type = try string(object["type"], field: "\(field).type") ?? ""
        observation.date = try string(object["date"], field: "\(field).date") ?? ""
        switch object["tags"] {
        case nil, is NSNull: break
        case let list as [Any]:
            observation.tags = try list.enumerated().map { index, tag throws(KnowledgeRuleError) in
                guard let tag = tag as? String else { throw KnowledgeRuleError(field: "\(field).tags[\(index)]", reason: .invalidFormat, "must be a string") }
                return tag
            }
        default: throw KnowledgeRuleError(field: "\(field).tags", reason: .invalidFormat, "must be an array of strings")
        }
        observation.metadata = try stringMap(object["metadata"], field: "\(field).metadata")
        return observation
    }

    private static func relation(_ raw: Any, field: String) throws(KnowledgeRuleError) -> Kb_Graph_V1_Relation {
        guard let object = raw as? [String: Any] else { throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be an object") }
        var relation = Kb_Graph_V1_Relation()
        relation.from = try string(object["from"], field: "\(field).from") ?? ""
        relation.to = try string(object["to"], field: "\(field).to") ?? ""
        relation.relationType = try string(object["relationType"] ?? object["relation_type"] ?? object["type"], field: "\(field).relationType") ?? ""
        if let team = try string(object["team"], field: "\(field).team") {
            try KnowledgeRules.checkTeam(team, field: "\(field).team")
            relation.team = team
        }
        relation.significance = try significance(object["significance"], field: "\(field).significance")
        relation.confidence = try confidence(object["confidence"], field: "\(field).confidence")
        relation.metadata = try stringMap(object["metadata"], field: "\(field).metadata")
        relation.createdAtMs = try timestamp(object["created_at"] ?? object["created"] ?? object["createdAt"], field: "\(field).created_at")
        try KnowledgeRules.check(relation, field: field)
        return relation
    }

    // MARK: Writing

    /// The file's bytes: pretty-printed, keys sorted, entities by team and name, relations by
    /// team, from, type and to, so two exports of the same graph are byte-identical.
    public func jsonData(lastUpdatedMs: Int64? = nil) -> Data {
        let sortedEntities = entities.sorted { ($0.team, $0.name) < ($1.team, $1.name) }
        let sortedRelations = relations.sorted { ($0.team, $0.from, $0.relationType, $0.to) < ($1.team, $1.from, $1.relationType, $1.to) }
        var metadata: [String: Any] = [
            "total_entities": entities.count,
            "total_relations": relations.count,
            "format": "kb-shared-memory-1",
        ]
        if let team { metadata["team"] = team }
        let lastUpdated = lastUpdatedMs ?? entities.map(\.lastModifiedMs).max() ?? 0
        if lastUpdated > 0 { metadata["last_updated"] = Self.iso(lastUpdated) }
        let root: [String: Any] = [
            "entities": sortedEntities.map(Self.json(entity:)),
            "relations": sortedRelations.map(Self.json(relation:)),
            "metadata": metadata,
        ]
        // The objects above hold only JSON types, so serialization cannot fail.
        return (try? JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }

    private static func json(entity: Kb_Graph_V1_Entity) -> [String: Any] {
        var object: [String: Any] = [
            "name": entity.name,
            "entityType": entity.entityType,
            "observations": entity.observations.map(json(observation:)),
            "significance": Int(entity.significance == 0 ? 5 : entity.significance),
            "confidence": entity.confidence == 0 ? 1.0 : entity.confidence,
            "source": entity.source.name,
        ]
        if !entity.team.isEmpty { object["team"] = entity.team }
        if !entity.metadata.isEmpty { object["metadata"] = entity.metadata }
        if entity.createdAtMs > 0 { object["created_at"] = iso(entity.createdAtMs) }
        if entity.lastModifiedMs > 0 { object["last_modified"] = iso(entity.lastModifiedMs) }
        return object
    }

    private static func json(observation: Kb_Graph_V1_Observation) -> Any {
        if observation.type.isEmpty, observation.date.isEmpty, observation.tags.isEmpty, observation.metadata.isEmpty {
            return observation.content
        }
        var object: [String: Any] = ["content": observation.content]
        if !observation.type.isEmpty { object["type"] = observation.type }
        if !observation.date.isEmpty { object["date"] = observation.date }
        if !observation.tags.isEmpty { object["tags"] = observation.tags }
        if !observation.metadata.isEmpty { object["metadata"] = observation.metadata }
        return object
    }

    private static func json(relation: Kb_Graph_V1_Relation) -> [String: Any] {
        var object: [String: Any] = [
            "from": relation.from,
            "to": relation.to,
            "relationType": relation.relationType,
            "confidence": relation.confidence == 0 ? 1.0 : relation.confidence,
            "significance": Int(relation.significance == 0 ? 5 : relation.significance),
        ]
        if !relation.team.isEmpty { object["team"] = relation.team }
        if !relation.metadata.isEmpty { object["metadata"] = relation.metadata }
        if relation.createdAtMs > 0 { object["created_at"] = iso(relation.createdAtMs) }
        return object
    }

    // MARK: Field readers

    /// Unix milliseconds as ISO 8601 with milliseconds, in UTC (`2025-10-22T09:30:00.123Z`).
    /// Integer arithmetic throughout, so parsing what this prints gives the same milliseconds.
    public static func iso(_ milliseconds: Int64) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let fraction = Int(milliseconds - seconds * 1000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let date = CivilDate(dayNumber: days)
        let (year, month, day) = (date.year, date.month, date.day)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            for _ in 0..<count {
                bytes.append(UInt8(48 + rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(year, 4); bytes.append(45); digits(month, 2); bytes.append(45); digits(day, 2)
        bytes.append(84); digits(secondOfDay / 3600, 2); bytes.append(58); digits(secondOfDay / 60 % 60, 2); bytes.append(58); digits(secondOfDay % 60, 2)
        bytes.append(46); digits(fraction, 3); bytes.append(90)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// ISO 8601, with or without fractional seconds, as Unix milliseconds (digits past the
    /// third are dropped).
    public static func parseISO(_ text: String) -> Int64? {
        guard let dot = text.firstIndex(of: ".") else {
            return (try? Date.ISO8601FormatStyle().parse(text)).map { Int64($0.timeIntervalSince1970) * 1000 }
        }
        let digits = text[text.index(after: dot)...].prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return nil }
        let rest = text[text.index(after: dot)...].dropFirst(digits.count)
        guard let date = try? Date.ISO8601FormatStyle().parse(String(text[..<dot]) + rest) else { return nil }
        let millis = Int64(String((digits + "00").prefix(3)))!
        return Int64(date.timeIntervalSince1970.rounded()) * 1000 + millis
    }

    private static func string(_ value: Any?, field: String) throws(KnowledgeRuleError) -> String? {
        switch value {
        case nil, is NSNull: return nil
        case let text as String: return text
        default: throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be a string")
        }
    }

    private static func number(_ value: Any?, field: String) throws(KnowledgeRuleError) -> Double? {
        switch value {
        case nil, is NSNull: return nil
        case let number as NSNumber where !isBoolean(value!):
            return number.doubleValue
        default: throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be a number")
        }
    }

    /// A whole number 1–10, or 0 when absent.
    private static func significance(_ value: Any?, field: String) throws(KnowledgeRuleError) -> Int32 {
        guard let significance = try number(value, field: field) else { return 0 }
        guard significance == significance.rounded(), (1...10).contains(significance) else {
            throw KnowledgeRuleError(field: field, reason: .outOfRange, "must be a whole number 1–10 (got \(significance))")
        }
        return Int32(significance)
    }

    /// A number in (0, 1], or 0 when absent (the range's top is checked with the entity).
    private static func confidence(_ value: Any?, field: String) throws(KnowledgeRuleError) -> Double {
        guard let confidence = try number(value, field: field) else { return 0 }
        guard confidence > 0 else { throw KnowledgeRuleError(field: field, reason: .outOfRange, "must be a number in (0, 1] (got \(confidence))") }
        return confidence
    }

    /// JSON booleans arrive as NSNumber too; `true` is not the number 1 here.
    private static func isBoolean(_ value: Any) -> Bool {
        if type(of: value) == Bool.self { return true }
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    private static func object(_ value: Any?, field: String) throws(KnowledgeRuleError) -> [String: Any]? {
        switch value {
        case nil, is NSNull: return nil
        case let object as [String: Any]: return object
        default: throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be an object")
        }
    }

    /// Metadata values that are not strings keep their JSON text, so nothing is lost.
    private static func stringMap(_ value: Any?, field: String) throws(KnowledgeRuleError) -> [String: String] {
        guard let object = try object(value, field: field) else { return [:] }
        var map: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: map[key] = text
            case is NSNull: continue
            default:
                guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) else {
                    throw KnowledgeRuleError(field: "\(field).\(key)", reason: .invalidFormat, "is not representable")
                }
                map[key] = String(decoding: data, as: UTF8.self)
            }
        }
        return map
    }

    private static func timestamp(_ value: Any?, field: String) throws(KnowledgeRuleError) -> Int64 {
        switch value {
        case nil, is NSNull: return 0
        case let text as String:
            guard let milliseconds = parseISO(text) else { throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be an ISO 8601 date such as 2025-10-22T09:30:00.000Z (got \"\(text)\")") }
            guard milliseconds >= 0 else { throw KnowledgeRuleError(field: field, reason: .outOfRange, "must not be before 1970") }
            return milliseconds
        case let number as NSNumber:
            guard number.doubleValue >= 0, number.doubleValue < 1e15 else { throw KnowledgeRuleError(field: field, reason: .outOfRange, "must be Unix milliseconds") }
            return number.int64Value
        default: throw KnowledgeRuleError(field: field, reason: .invalidFormat, "must be an ISO 8601 date")
        }
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        return (nsError.userInfo[NSDebugDescriptionErrorKey] as? String) ?? nsError.localizedDescription
    }
}
