import Foundation
import KBKnowledge
import KBProto
import KBRuntime

/// How entities and relations look in the API (the shared-memory JSON's field names, with a node
/// id `team:name`), and how request bodies become protobuf messages.
public enum KnowledgeJSON {
    static func time(_ milliseconds: Int64) -> JSONValue {
        milliseconds > 0 ? .string(SharedMemoryDocument.iso(milliseconds)) : .null
    }

    /// A change of the feed: `{seq, time, team, kind, name?, contentHash?, from?, to?, relationType?}`,
    /// `kind` one of `entity_upserted`, `entity_deleted`, `relation_added`, `relation_removed`.
    static func change(_ change: Kb_Graph_V1_Change) -> JSONValue {
        var fields: [(String, JSONValue)] = [("seq", .integer(change.seq)), ("time", time(change.timeMs)), ("team", .string(change.team))]
        switch change.kind {
        case .entityUpserted: fields += [("kind", "entity_upserted"), ("name", .string(change.name)), ("contentHash", .string(change.contentHash))]
        case .entityDeleted: fields += [("kind", "entity_deleted"), ("name", .string(change.name))]
        case .relationAdded, .relationRemoved:
            fields += [("kind", .string(change.kind == .relationAdded ? "relation_added" : "relation_removed")),
                       ("from", .string(change.from)), ("to", .string(change.to)), ("relationType", .string(change.relationType))]
        default: fields += [("kind", "unknown")]
        }
        return .object(fields)
    }

    /// An entity; observations as objects `{content, type?, date?, tags?, metadata?}`.
    static func entity(_ entity: Kb_Graph_V1_Entity) -> JSONValue {
        .object(nodeMembers(entity) + [
            ("created_at", time(entity.createdAtMs)),
            ("last_modified", time(entity.lastModifiedMs)),
            ("observations", .array(entity.observations.map(observation))),
            ("metadata", entity.metadata.jsonObject { .string($0) }),
        ])
    }

    /// A node of the drawing: what the page needs to place, colour and size it.
    static func node(_ entity: Kb_Graph_V1_Entity, position: (x: Double, y: Double)? = nil) -> JSONValue {
        var members = nodeMembers(entity)
        if let position {
            members.append(("x", .number((position.x * 10).rounded() / 10)))
            members.append(("y", .number((position.y * 10).rounded() / 10)))
        }
        return .object(members)
    }

    private static func nodeMembers(_ entity: Kb_Graph_V1_Entity) -> [(String, JSONValue)] {
        [
            ("id", .string("\(entity.team):\(entity.name)")),
            ("team", .string(entity.team)),
            ("name", .string(entity.name)),
            ("entityType", .string(entity.entityType)),
            ("significance", .integer(Int64(entity.significance == 0 ? 5 : entity.significance))),
            ("confidence", .number(entity.confidence == 0 ? 1 : entity.confidence)),
            ("source", .string(entity.source.name)),
        ]
    }

    static func observation(_ observation: Kb_Graph_V1_Observation) -> JSONValue {
        var members: [(String, JSONValue)] = [("content", .string(observation.content))]
        if !observation.type.isEmpty { members.append(("type", .string(observation.type))) }
        if !observation.date.isEmpty { members.append(("date", .string(observation.date))) }
        if !observation.tags.isEmpty { members.append(("tags", .array(observation.tags.map { .string($0) }))) }
        if !observation.metadata.isEmpty { members.append(("metadata", observation.metadata.jsonObject { .string($0) })) }
        return .object(members)
    }

    static func relation(_ relation: Kb_Graph_V1_Relation) -> JSONValue {
        .object([
            ("team", .string(relation.team)),
            ("from", .string(relation.from)),
            ("to", .string(relation.to)),
            ("relationType", .string(relation.relationType)),
            ("confidence", .number(relation.confidence == 0 ? 1 : relation.confidence)),
            ("significance", .integer(Int64(relation.significance == 0 ? 5 : relation.significance))),
            ("created_at", time(relation.createdAtMs)),
            ("metadata", relation.metadata.jsonObject { .string($0) }),
        ])
    }

    // MARK: Request bodies

    /// A request body as a JSON object, or a 400 saying why not.
    static func object(_ data: Data) throws(APIError) -> [String: Any] {
        guard !data.isEmpty else { throw APIError.invalid("body", "must be a JSON object") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw APIError.invalid("body", "is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else { throw APIError.invalid("body", "must be a JSON object") }
        return object
    }

    static func string(_ object: [String: Any], _ key: String, required: Bool = false) throws(APIError) -> String? {
        switch object[key] {
        case nil, is NSNull:
            if required { throw APIError.invalid(key, "is required") }
            return nil
        case let text as String: return text
        default: throw APIError.invalid(key, "must be a string")
        }
    }

    static func number(_ object: [String: Any], _ key: String) throws(APIError) -> Double? {
        switch object[key] {
        case nil, is NSNull: return nil
        case let value as NSNumber where !isBoolean(value): return value.doubleValue
        default: throw APIError.invalid(key, "must be a number")
        }
    }

    /// JSON booleans arrive as NSNumber too; `true` is not the number 1 here.
    private static func isBoolean(_ value: NSNumber) -> Bool {
        if type(of: value as Any) == Bool.self { return true }
        return String(cString: value.objCType) == "c"
    }

    /// An entity from a create or update body. `team` and `name` come from the path on update.
    static func entity(_ object: [String: Any], team: String, name: String, isUpdate: Bool) throws(APIError) -> Kb_Graph_V1_Entity {
        var entity = Kb_Graph_V1_Entity()
        entity.team = team
        entity.name = name
        entity.entityType = try string(object, "entityType", required: !isUpdate) ?? ""
        if let significance = try number(object, "significance") {
            guard significance == significance.rounded(), (1...10).contains(significance) else { throw APIError.invalid("significance", "must be an integer 1–10") }
            entity.significance = Int32(significance)
        }
        if let confidence = try number(object, "confidence") {
            guard confidence > 0, confidence <= 1 else { throw APIError.invalid("confidence", "must be a number in (0, 1]") }
            entity.confidence = confidence
        }
        if let text = try string(object, "source") {
            guard let source = Kb_Graph_V1_Source(name: text) else { throw APIError.invalid("source", "must be manual or auto") }
            entity.source = source
        } else if !isUpdate {
            entity.source = .manual
        }
        switch object["observations"] {
        case nil, is NSNull: break
        case let list as [Any]:
            for (index, item) in list.enumerated() {
                var observation = Kb_Graph_V1_Observation()
                switch item {
                case let text as String: observation.content = text
                case let fields as [String: Any]:
                    observation.content = try string(fields, "content", required: true, field: "observations[\(index)].content")
                    observation.type = try string(fields, "type", required: false, field: "observations[\(index)].type")
                    observation.date = try string(fields, "date", required: false, field: "observations[\(index)].date")
                default: throw APIError.invalid("observations[\(index)]", "must be a string or an object with \"content\"")
                }
                entity.observations.append(observation)
            }
        default: throw APIError.invalid("observations", "must be an array")
        }
        switch object["metadata"] {
        case nil, is NSNull: break
        case let map as [String: Any]:
            for (key, value) in map {
                guard let text = value as? String else { throw APIError.invalid("metadata.\(key)", "must be a string") }
                entity.metadata[key] = text
            }
        default: throw APIError.invalid("metadata", "must be an object of strings")
        }
        do {
            try KnowledgeRules.checkTeam(team, field: "team")
            try KnowledgeRules.check(entity, field: "entity", isUpdate: isUpdate)
        } catch {
            throw APIError(Self.shortened(error))
        }
        return entity
    }

    private static func string(_ object: [String: Any], _ key: String, required: Bool, field: String) throws(APIError) -> String {
        switch object[key] {
        case nil, is NSNull:
            if required { throw APIError.invalid(field, "is required") }
            return ""
        case let text as String: return text
        default: throw APIError.invalid(field, "must be a string")
        }
    }

    /// A relation from a create or delete body.
    static func relation(_ object: [String: Any]) throws(APIError) -> Kb_Graph_V1_Relation {
        var relation = Kb_Graph_V1_Relation()
        relation.team = try string(object, "team", required: true)!
        relation.from = try string(object, "from", required: true)!
        relation.to = try string(object, "to", required: true)!
        relation.relationType = try string(object, "relationType", required: true)!
        if let confidence = try number(object, "confidence") {
            guard confidence > 0, confidence <= 1 else { throw APIError.invalid("confidence", "must be a number in (0, 1]") }
            relation.confidence = confidence
        }
        if let significance = try number(object, "significance") {
            guard significance == significance.rounded(), (1...10).contains(significance) else { throw APIError.invalid("significance", "must be an integer 1–10") }
            relation.significance = Int32(significance)
        }
        do {
            try KnowledgeRules.checkTeam(relation.team, field: "team")
            try KnowledgeRules.check(relation, field: "relation")
        } catch {
            throw APIError(Self.shortened(error))
        }
        return relation
    }

    /// `entity.name` → `name`: the API's bodies are flat.
    private static func shortened(_ error: KnowledgeRuleError) -> KnowledgeRuleError {
        var error = error
        for prefix in ["entity.", "relation."] where error.field.hasPrefix(prefix) {
            error.field = String(error.field.dropFirst(prefix.count))
        }
        let renames = ["entity_type": "entityType", "relation_type": "relationType"]
        if let renamed = renames[error.field] { error.field = renamed }
        return error
    }
}
