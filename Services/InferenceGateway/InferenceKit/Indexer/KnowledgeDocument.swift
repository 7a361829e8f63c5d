import KBKnowledge
import KBProto

/// One entity as the indexer writes it to vector-search: its point id, the text it embeds, the
/// payload, and a hash of both (README, "The indexer").
///
/// The text form is the entity's name and type on the first line, then one line per
/// observation in order (`type: content` when the observation has a type):
///
///     zlib1g (package)
///     compression library implementing the deflate method
///     homepage: https://zlib.net
///
/// Relations are not part of it: an entity's meaning is what is written about it.
public struct KnowledgeDocument: Sendable, Equatable {
    /// The point id: `team:name`, so a write is idempotent and a team's points are its own.
    public let id: String
    /// The entity's team, name and type (payload `team`, `name`, `entityType`).
    public let team: String
    /// The entity's name.
    public let name: String
    /// The entity's type.
    public let entityType: String
    /// `manual` or `auto` (payload `source`).
    public let source: String
    /// 1–10, unset stored as 5 (payload `significance`).
    public let significance: Int64
    /// The text embedded and indexed for BM25 (the collection's text field, `text`).
    public let text: String
    /// The lowercase hex SHA-256 of the text and the payload: equal hashes mean the point
    /// already holds this content, so it is not embedded again.
    public let contentHash: String

    /// The payload field that holds `contentHash` on the point.
    public static let hashField = "content_hash"

    /// The document of `entity` (of `team` when the entity does not say it).
    public init(_ entity: Kb_Graph_V1_Entity, team: String? = nil) {
        let team = entity.team.isEmpty ? team ?? "" : entity.team
        self.team = team
        name = entity.name
        entityType = entity.entityType
        source = entity.source == .auto ? "auto" : "manual"
        significance = Int64(entity.significance == 0 ? 5 : entity.significance)
        var lines = ["\(entity.name) (\(entity.entityType))"]
        for observation in entity.observations where !observation.content.isEmpty {
            lines.append(observation.type.isEmpty ? observation.content : "\(observation.type): \(observation.content)")
        }
        text = lines.joined(separator: "\n")
        id = Self.pointID(team: team, name: entity.name)
        var bytes: [UInt8] = []
        for field in [text, entityType, source, String(significance), team, name] {
            let utf8 = Array(field.utf8)
            let count = UInt32(utf8.count)
            bytes += [UInt8(count >> 24), UInt8(truncatingIfNeeded: count >> 16), UInt8(truncatingIfNeeded: count >> 8), UInt8(truncatingIfNeeded: count)]
            bytes += utf8
        }
        contentHash = SHA256.hex(bytes)
    }

    /// The longest point id vector-search takes, in bytes.
    static let maximumIDBytes = KnowledgePointID.maximumBytes

    /// `team:name`, or its SHA-256 when too long (`KnowledgePointID`, shared with `ukb similar`).
    public static func pointID(team: String, name: String) -> String {
        KnowledgePointID.make(team: team, name: name)
    }

    /// The point's payload: `team`, `entityType`, `name`, `source` (keywords), `significance`
    /// (integer), `text` (text, for BM25) and `content_hash`.
    public var payload: [String: Kb_Vector_V1_PayloadValue] {
        [
            "team": .with { $0.keyword = team },
            "entityType": .with { $0.keyword = entityType },
            "name": .with { $0.keyword = name },
            "source": .with { $0.keyword = source },
            "significance": .with { $0.integer = significance },
            "text": .with { $0.text = text },
            Self.hashField: .with { $0.keyword = contentHash },
        ]
    }

    /// The point of this document with `vector`.
    public func point(vector: [Float]) -> Kb_Vector_V1_Point {
        .with {
            $0.id = id
            $0.vector = vector
            $0.payload = payload
        }
    }
}
