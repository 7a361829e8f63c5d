import Foundation
import KBProto
import MCP

/// Results in the reference memory server's shapes: the structured result, and the same as
/// indented JSON text.
extension MemoryTools {
    /// An entity in the reference's shape: name, entityType, observations as strings.
    static func entityValue(_ entity: Kb_Graph_V1_Entity) -> Value {
        .object([
            "name": .string(entity.name),
            "entityType": .string(entity.entityType),
            "observations": .array(entity.observations.map { .string($0.content) }),
        ])
    }

    static func entityValue(_ entity: Kb_Graph_V1_Entity, score: Double) -> Value {
        guard case .object(var fields) = entityValue(entity) else { return entityValue(entity) }
        fields["score"] = .double(score)
        return .object(fields)
    }

    /// A relation in the reference's shape: from, to, relationType.
    static func relationValue(_ relation: Kb_Graph_V1_Relation) -> Value {
        .object(["from": .string(relation.from), "to": .string(relation.to), "relationType": .string(relation.relationType)])
    }

    static func graphValue(_ entities: [Kb_Graph_V1_Entity], _ relations: [Kb_Graph_V1_Relation]) -> [String: Value] {
        ["entities": .array(entities.map(entityValue)), "relations": .array(relations.map(relationValue))]
    }

    /// The structured result, and the same as indented JSON text (as the reference answers).
    static func success(_ structured: [String: Value], preface: String? = nil) -> CallTool.Result {
        var text = json(.object(structured))
        if let preface { text = preface + "\n" + text }
        return CallTool.Result(content: [.text(text: text, annotations: nil, _meta: nil)], structuredContent: .object(structured), isError: false)
    }

    /// The reference's answer to a deletion: `{success, message}`, the message as the text.
    static func message(_ message: String) -> CallTool.Result {
        CallTool.Result(content: [.text(text: message, annotations: nil, _meta: nil)], structuredContent: .object(["success": .bool(true), "message": .string(message)]), isError: false)
    }

    /// A tool error: the message is the text an agent reads.
    static func failure(_ message: String) -> CallTool.Result {
        CallTool.Result(content: [.text(text: message, annotations: nil, _meta: nil)], isError: true)
    }

    static func json(_ value: Value) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }
}
