import KBKnowledge
import KBProto

// The one mapping between the graph store's values and the `kb.graph.v1` messages: the RPC face
// translates requests and responses with it, and the store keeps its records in the messages'
// encoding with it (so stored bytes are the same as before the store spoke values).

extension Observation {
    init(_ message: Kb_Graph_V1_Observation) {
        self.init(type: message.type, content: message.content, date: message.date, tags: message.tags, metadata: message.metadata)
    }

    var message: Kb_Graph_V1_Observation {
        var message = Kb_Graph_V1_Observation()
        message.type = type
        message.content = content
        message.date = date
        message.tags = tags
        message.metadata = metadata
        return message
    }
}

extension Entity {
    /// A stored record or a response's entity; an unset source counts as manual.
    init(_ message: Kb_Graph_V1_Entity) {
        self.init(team: message.team, name: message.name, entityType: message.entityType, observations: message.observations.map(Observation.init),
                  significance: message.significance, confidence: message.confidence, source: KnowledgeSource(message.source),
                  metadata: message.metadata, createdAtMs: message.createdAtMs, lastModifiedMs: message.lastModifiedMs)
    }

    var message: Kb_Graph_V1_Entity {
        var message = Kb_Graph_V1_Entity()
        message.team = team
        message.name = name
        message.entityType = entityType
        message.observations = observations.map(\.message)
        message.significance = significance
        message.confidence = confidence
        message.source = Kb_Graph_V1_Source(source)
        message.metadata = metadata
        message.createdAtMs = createdAtMs
        message.lastModifiedMs = lastModifiedMs
        return message
    }
}

extension EntityInput {
    /// A request's entity, checked by `KnowledgeRules`: zeros and empty strings mean "not given".
    init(_ message: Kb_Graph_V1_Entity) {
        self.init(name: message.name, entityType: message.entityType.isEmpty ? nil : message.entityType,
                  observations: message.observations.map(Observation.init),
                  significance: message.significance == 0 ? nil : message.significance,
                  confidence: message.confidence == 0 ? nil : message.confidence,
                  source: message.source == .unspecified ? nil : KnowledgeSource(message.source),
                  metadata: message.metadata,
                  createdAtMs: message.createdAtMs == 0 ? nil : message.createdAtMs,
                  lastModifiedMs: message.lastModifiedMs == 0 ? nil : message.lastModifiedMs)
    }
}

extension RelationID {
    init(_ message: Kb_Graph_V1_Relation) {
        self.init(from: message.from, relationType: message.relationType, to: message.to)
    }
}

extension Relation {
    init(_ message: Kb_Graph_V1_Relation) {
        self.init(team: message.team, id: RelationID(message), confidence: message.confidence, significance: message.significance,
                  createdAtMs: message.createdAtMs, metadata: message.metadata)
    }

    var message: Kb_Graph_V1_Relation {
        var message = Kb_Graph_V1_Relation()
        message.from = id.from
        message.to = id.to
        message.relationType = id.relationType
        message.team = team
        message.confidence = confidence
        message.significance = significance
        message.createdAtMs = createdAtMs
        message.metadata = metadata
        return message
    }
}

extension RelationInput {
    /// A request's relation, checked by `KnowledgeRules`: zeros mean "not given".
    init(_ message: Kb_Graph_V1_Relation) {
        self.init(id: RelationID(message), confidence: message.confidence == 0 ? nil : message.confidence,
                  significance: message.significance == 0 ? nil : message.significance,
                  createdAtMs: message.createdAtMs == 0 ? nil : message.createdAtMs, metadata: message.metadata)
    }
}
