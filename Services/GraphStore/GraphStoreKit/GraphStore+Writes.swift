import Foundation
import KBKnowledge
import KBProto
import KBRPC

extension GraphStore {
    /// Upserts a batch atomically: a new name creates an entity, a known one merges
    /// observations (no duplicates) and takes the fields given. Returns the stored entities.
    public func putEntities(_ request: Kb_Graph_V1_PutEntitiesRequest) async throws -> Kb_Graph_V1_PutEntitiesResponse {
        try Self.check { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            guard !request.entities.isEmpty else { throw KnowledgeRuleError(field: "entities", "must hold at least one entity") }
            for (index, entity) in request.entities.enumerated() {
                try KnowledgeRules.check(entity, field: "entities[\(index)]", isUpdate: true)
            }
        }
        // What a new entity would be, computed here on the caller's thread in parallel with other
        // requests, so the single commit thread only checks and copies it.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let prepared = try request.entities.map { try PreparedEntity($0, team: request.team, now: now) }
        return try await commits.commit { transaction in
            var response = Kb_Graph_V1_PutEntitiesResponse()
            for (index, entity) in request.entities.enumerated() {
                let (stored, created) = try Self.upsert(entity, prepared: prepared[index], team: request.team, index: index, in: transaction)
                if !request.omitEntities { response.entities.append(stored) }
                if created { response.created += 1 } else { response.updated += 1 }
            }
            return response
        }
    }

    /// Deletes entities and every relation touching them, in one atomic write. Unknown names
    /// are skipped (deleting twice is not an error).
    public func deleteEntities(_ request: Kb_Graph_V1_DeleteEntitiesRequest) async throws -> Kb_Graph_V1_DeleteEntitiesResponse {
        try Self.check { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            for (index, name) in request.names.enumerated() { try KnowledgeRules.checkName(name, field: "names[\(index)]") }
        }
        return try await commits.commit { transaction in
            var response = Kb_Graph_V1_DeleteEntitiesResponse()
            for name in request.names {
                guard let bytes = try transaction.get(GraphKey.entity(request.team, name)) else { continue }
                let entity = try Self.decodeEntity(bytes)
                let team = request.team
                for (key, _) in try transaction.scan(prefix: GraphKey.adjacencyPrefix(GraphKey.outbound, team, name)) {
                    let parts = GraphKey.components(key, after: GraphKey.adjacencyPrefix(GraphKey.outbound, team, name))
                    if try Self.removeRelation(team: team, from: name, type: parts[0], to: parts[1], in: transaction) { response.deletedRelations += 1 }
                }
                for (key, _) in try transaction.scan(prefix: GraphKey.adjacencyPrefix(GraphKey.inbound, team, name)) {
                    let parts = GraphKey.components(key, after: GraphKey.adjacencyPrefix(GraphKey.inbound, team, name))
                    if try Self.removeRelation(team: team, from: parts[1], type: parts[0], to: name, in: transaction) { response.deletedRelations += 1 }
                }
                transaction.delete(GraphKey.entity(team, name))
                try Self.updateIndexes(team: team, old: entity, new: nil, in: transaction)
                try transaction.touch(team: team, at: transaction.now)
                transaction.entityDelta -= 1
                response.deletedEntities += 1
            }
            return response
        }
    }

    /// Adds relations atomically. Both ends must exist in the team (else FAILED_PRECONDITION
    /// naming the missing end, and nothing is written); an existing from/type/to is counted,
    /// not duplicated.
    public func putRelations(_ request: Kb_Graph_V1_PutRelationsRequest) async throws -> Kb_Graph_V1_PutRelationsResponse {
        try Self.check { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            guard !request.relations.isEmpty else { throw KnowledgeRuleError(field: "relations", "must hold at least one relation") }
            for (index, relation) in request.relations.enumerated() { try KnowledgeRules.check(relation, field: "relations[\(index)]") }
        }
        return try await commits.commit { transaction in
            var response = Kb_Graph_V1_PutRelationsResponse()
            let team = request.team
            for (index, input) in request.relations.enumerated() {
                for (end, name) in [("from", input.from), ("to", input.to)] where try !transaction.contains(GraphKey.entity(team, name)) {
                    throw RPCError(.failedPrecondition, "relations[\(index)].\(end): entity '\(name)' does not exist in team '\(team)'")
                }
                let key = GraphKey.outbound(team, input.from, input.relationType, input.to)
                if try transaction.contains(key) {
                    response.existing += 1
                    continue
                }
                var relation = input
                relation.team = team
                if relation.confidence == 0 { relation.confidence = 1 }
                if relation.significance == 0 { relation.significance = 5 }
                if relation.createdAtMs == 0 { relation.createdAtMs = transaction.now }
                transaction.put(key, try Self.encode(relation))
                transaction.put(GraphKey.inbound(team, relation.to, relation.relationType, relation.from), [])
                transaction.putBlind(GraphKey.relationType(team, relation.relationType, relation.from, relation.to), [])
                try transaction.add(1, to: GraphKey.relationsCounter, team: team)
                try transaction.add(1, to: GraphKey.relationTypeCounter(relation.relationType), team: team)
                try transaction.touch(team: team, at: transaction.now)
                transaction.relationDelta += 1
                response.created += 1
            }
            return response
        }
    }

    /// Deletes relations matched by from, type and to, atomically; unknown ones are skipped.
    public func deleteRelations(_ request: Kb_Graph_V1_DeleteRelationsRequest) async throws -> Kb_Graph_V1_DeleteRelationsResponse {
        try Self.check { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            for (index, relation) in request.relations.enumerated() {
                try KnowledgeRules.checkName(relation.from, field: "relations[\(index)].from")
                try KnowledgeRules.checkName(relation.to, field: "relations[\(index)].to")
                try KnowledgeRules.checkType(relation.relationType, field: "relations[\(index)].relation_type")
            }
        }
        return try await commits.commit { transaction in
            var response = Kb_Graph_V1_DeleteRelationsResponse()
            for relation in request.relations {
                if try Self.removeRelation(team: request.team, from: relation.from, type: relation.relationType, to: relation.to, in: transaction) {
                    try transaction.touch(team: request.team, at: transaction.now)
                    response.deleted += 1
                }
            }
            return response
        }
    }

    // MARK: Pieces of a write

    /// Runs the rule checks, turning a broken rule into INVALID_ARGUMENT with field and rule.
    static func check(_ body: () throws(KnowledgeRuleError) -> Void) throws {
        do { try body() } catch { throw RPCError.invalidArgument(field: error.field, error.rule) }
    }

    /// An entity as it would be stored if new: defaults filled, observations deduplicated,
    /// encoded, its words counted.
    struct PreparedEntity: Sendable {
        var key: [UInt8]
        var entity: Kb_Graph_V1_Entity
        var bytes: [UInt8]
        var words: [String: TextIndex.Hits]

        init(_ input: Kb_Graph_V1_Entity, team: String, now: Int64) throws {
            key = GraphKey.entity(team, input.name)
            entity = input
            entity.team = team
            entity.observations = GraphStore.mergeObservations([], input.observations)
            if entity.significance == 0 { entity.significance = 5 }
            if entity.confidence == 0 { entity.confidence = 1 }
            if entity.source == .unspecified { entity.source = .manual }
            if entity.createdAtMs == 0 { entity.createdAtMs = input.lastModifiedMs > 0 ? input.lastModifiedMs : now }
            if entity.lastModifiedMs == 0 { entity.lastModifiedMs = now }
            bytes = try GraphStore.encode(entity)
            words = TextIndex.entries(of: entity)
        }
    }

    static func upsert(_ input: Kb_Graph_V1_Entity, prepared: PreparedEntity, team: String, index: Int, in transaction: GraphTransaction) throws -> (Kb_Graph_V1_Entity, created: Bool) {
        let key = prepared.key
        guard let oldBytes = try transaction.get(key) else {
            guard !input.entityType.isEmpty else {
                throw RPCError.invalidArgument(field: "entities[\(index)].entity_type", "must be 1–\(KnowledgeRules.maxTypeLength) characters for a new entity (got 0)")
            }
            transaction.entityDelta += 1
            transaction.put(key, prepared.bytes)
            try updateIndexes(team: team, old: nil, new: prepared.entity, newWords: prepared.words, in: transaction)
            try transaction.touch(team: team, at: transaction.now)
            return (prepared.entity, true)
        }
        let old = try decodeEntity(oldBytes)
        var entity = old
        if !input.entityType.isEmpty { entity.entityType = input.entityType }
        if input.significance != 0 { entity.significance = input.significance }
        if input.confidence != 0 { entity.confidence = input.confidence }
        if input.source != .unspecified { entity.source = input.source }
        entity.metadata.merge(input.metadata) { $1 }
        entity.observations = mergeObservations(old.observations, input.observations)
        entity.lastModifiedMs = input.lastModifiedMs > 0 ? input.lastModifiedMs : transaction.now
        if old == entity { return (entity, false) }
        transaction.put(key, try encode(entity))
        try updateIndexes(team: team, old: old, new: entity, in: transaction)
        try transaction.touch(team: team, at: transaction.now)
        return (entity, false)
    }

    /// Observations of `old`, then those of `new` not already there (same type and content).
    static func mergeObservations(_ old: [Kb_Graph_V1_Observation], _ new: [Kb_Graph_V1_Observation]) -> [Kb_Graph_V1_Observation] {
        var seen = Set(old.map { ObservationKey(type: $0.type, content: $0.content) })
        var merged = old
        for observation in new where seen.insert(ObservationKey(type: observation.type, content: observation.content)).inserted {
            merged.append(observation)
        }
        return merged
    }

    private struct ObservationKey: Hashable {
        var type: String
        var content: String
    }

    /// Moves an entity's index entries and counters from `old` to `new` (either may be nil).
    static func updateIndexes(team: String, old: Kb_Graph_V1_Entity?, new: Kb_Graph_V1_Entity?, newWords: [String: TextIndex.Hits]? = nil, in transaction: GraphTransaction) throws {
        if old?.entityType != new?.entityType {
            if let old {
                transaction.deleteBlind(GraphKey.entityType(team, old.entityType, old.name))
                try transaction.add(-1, to: GraphKey.typeCounter(old.entityType), team: team)
            }
            if let new {
                transaction.putBlind(GraphKey.entityType(team, new.entityType, new.name), [])
                try transaction.add(1, to: GraphKey.typeCounter(new.entityType), team: team)
            }
        }
        if old?.source != new?.source {
            if let old { try transaction.add(-1, to: GraphKey.sourceCounter(old.source.name), team: team) }
            if let new { try transaction.add(1, to: GraphKey.sourceCounter(new.source.name), team: team) }
        }
        if (old == nil) != (new == nil) {
            try transaction.add(new == nil ? -1 : 1, to: GraphKey.entitiesCounter, team: team)
        }
        if old?.significance != new?.significance || old?.entityType != new?.entityType || old?.source != new?.source {
            if let old { transaction.deleteBlind(GraphKey.significance(team, old.significance, old.name)) }
            if let new { transaction.putBlind(GraphKey.significance(team, new.significance, new.name), GraphKey.significanceValue(new)) }
        }
        if old?.lastModifiedMs != new?.lastModifiedMs {
            if let old { transaction.deleteBlind(GraphKey.modified(team, old.lastModifiedMs, old.name)) }
            if let new { transaction.putBlind(GraphKey.modified(team, new.lastModifiedMs, new.name), []) }
        }
        let oldWords = old.map(TextIndex.entries) ?? [:]
        let newWords = newWords ?? new.map(TextIndex.entries) ?? [:]
        let name = (new ?? old)!.name
        for word in oldWords.keys where newWords[word] == nil {
            transaction.deleteBlind(GraphKey.text(team, word, name))
        }
        for (word, hits) in newWords where oldWords[word] != hits {
            transaction.putBlind(GraphKey.text(team, word, name), hits.bytes)
        }
    }

    /// Deletes one relation with its index entries and counters; false when it did not exist.
    static func removeRelation(team: String, from: String, type: String, to: String, in transaction: GraphTransaction) throws -> Bool {
        let key = GraphKey.outbound(team, from, type, to)
        guard try transaction.contains(key) else { return false }
        transaction.delete(key)
        transaction.delete(GraphKey.inbound(team, to, type, from))
        transaction.deleteBlind(GraphKey.relationType(team, type, from, to))
        try transaction.add(-1, to: GraphKey.relationsCounter, team: team)
        try transaction.add(-1, to: GraphKey.relationTypeCounter(type), team: team)
        transaction.relationDelta -= 1
        return true
    }
}
