import Foundation
import KBKnowledge
import KBLevelDB
import KBProto
import KBTime

/// What `putEntities` did.
public struct PutEntitiesOutcome: Sendable {
    /// The entities as stored, in the order given (empty when not asked for).
    public var entities: [Entity]
    /// How many names were new.
    public var created: Int
    /// How many names existed (changed or not).
    public var updated: Int
}

/// What `deleteEntities` did.
public struct DeleteEntitiesOutcome: Sendable {
    /// How many of the names existed.
    public var deletedEntities: Int
    /// How many relations went with them.
    public var deletedRelations: Int
}

/// Observations to remove from one entity: those whose content is one of `contents`.
public struct ObservationDeletion: Sendable {
    /// The entity.
    public var name: String
    /// The contents to remove.
    public var contents: [String]

    /// A deletion of `contents` from entity `name`.
    public init(name: String, contents: [String]) {
        self.name = name
        self.contents = contents
    }
}

/// What `deleteObservations` did.
public struct DeleteObservationsOutcome: Sendable {
    /// How many observations were removed.
    public var deleted: Int
    /// The names that are no entity of the team, in request order.
    public var missing: [String]
}

/// What `putRelations` did.
public struct PutRelationsOutcome: Sendable {
    /// How many relations were new.
    public var created: Int
    /// How many existed already (left as they were).
    public var existing: Int
}

extension GraphStore {
    /// Upserts `entities` in `team` atomically: a new name creates an entity (its type is then
    /// required), a known one merges observations (no duplicates) and takes the fields given.
    ///
    /// The inputs must already follow `KnowledgeRules` (the RPC face checks them). Throws
    /// `GraphStoreError` `.invalidArgument` (field `entities[i].entity_type`) for a new entity
    /// without a type; then nothing is written.
    public func putEntities(team: String, _ entities: [EntityInput], returningEntities: Bool = true) async throws -> PutEntitiesOutcome {
        // What a new entity would be, computed here on the caller's thread in parallel with other
        // requests, so the single commit thread only checks and copies it.
        let now = UnixTime.nowMilliseconds()
        let prepared = try entities.map { try PreparedEntity($0, team: team, now: now) }
        let limits = self.limits
        for (index, entity) in prepared.enumerated() {
            try Self.checkSize(entity.entity, bytes: entity.bytes.count, limits: limits, index: index)
        }
        return try await commits.commit { transaction in
            var outcome = PutEntitiesOutcome(entities: [], created: 0, updated: 0)
            for (index, input) in entities.enumerated() {
                let (stored, created) = try Self.upsert(input, prepared: prepared[index], team: team, index: index, limits: limits, in: transaction)
                if returningEntities { outcome.entities.append(stored) }
                if created { outcome.created += 1 } else { outcome.updated += 1 }
            }
            return outcome
        }
    }

    /// Deletes the entities `names` of `team` and every relation touching them, in one atomic
    /// write. Unknown names are skipped (deleting twice is not an error).
    public func deleteEntities(team: String, _ names: [String]) async throws -> DeleteEntitiesOutcome {
        try await commits.commit { transaction in
            var outcome = DeleteEntitiesOutcome(deletedEntities: 0, deletedRelations: 0)
            for name in names {
                guard let bytes = try transaction.get(GraphKey.entity(team, name)) else { continue }
                let entity = try Self.storedEntity(bytes)
                for (key, _) in try transaction.scan(prefix: GraphKey.adjacencyPrefix(GraphKey.outbound, team, name)) {
                    let parts = GraphKey.components(key, after: GraphKey.adjacencyPrefix(GraphKey.outbound, team, name))
                    if try Self.removeRelation(team: team, RelationID(from: name, relationType: parts[0], to: parts[1]), in: transaction) { outcome.deletedRelations += 1 }
                }
                for (key, _) in try transaction.scan(prefix: GraphKey.adjacencyPrefix(GraphKey.inbound, team, name)) {
                    let parts = GraphKey.components(key, after: GraphKey.adjacencyPrefix(GraphKey.inbound, team, name))
                    if try Self.removeRelation(team: team, RelationID(from: parts[1], relationType: parts[0], to: name), in: transaction) { outcome.deletedRelations += 1 }
                }
                transaction.delete(GraphKey.entity(team, name))
                try Self.updateIndexes(team: team, old: entity, new: nil, in: transaction)
                try transaction.touch(team: team, at: transaction.now)
                try transaction.recordDeletion(team: team, name: name)
                transaction.entityDelta -= 1
                outcome.deletedEntities += 1
            }
            return outcome
        }
    }

    /// Removes from each named entity of `team` the observations whose content is one of the
    /// deletion's `contents`, atomically; the entity keeps its other fields, creation time and
    /// relations, and its change is a feed upsert like any other. A name that is no entity is
    /// reported in `missing`, not an error; an entity that loses nothing is not written.
    public func deleteObservations(team: String, _ deletions: [ObservationDeletion]) async throws -> DeleteObservationsOutcome {
        try await commits.commit { transaction in
            var outcome = DeleteObservationsOutcome(deleted: 0, missing: [])
            for deletion in deletions {
                let key = GraphKey.entity(team, deletion.name)
                guard let bytes = try transaction.get(key) else {
                    outcome.missing.append(deletion.name)
                    continue
                }
                let old = try Self.storedEntity(bytes)
                let doomed = Set(deletion.contents)
                var entity = old
                entity.observations = old.observations.filter { !doomed.contains($0.content) }
                guard entity.observations.count < old.observations.count else { continue }
                entity.lastModifiedMs = transaction.now
                transaction.put(key, try Self.record(entity))
                try Self.updateIndexes(team: team, old: old, new: entity, in: transaction)
                try transaction.touch(team: team, at: transaction.now)
                try transaction.recordUpsert(team: team, name: entity.name, contentHash: ContentHash.of(entity))
                outcome.deleted += old.observations.count - entity.observations.count
            }
            return outcome
        }
    }

    /// Adds `relations` to `team` atomically. Both ends must exist in the team (else
    /// `GraphStoreError` `.failedPrecondition` naming the missing end, field `relations[i].from`
    /// or `.to`, and nothing is written); an existing from/type/to is counted, not duplicated.
    public func putRelations(team: String, _ relations: [RelationInput]) async throws -> PutRelationsOutcome {
        try await commits.commit { transaction in
            var outcome = PutRelationsOutcome(created: 0, existing: 0)
            for (index, input) in relations.enumerated() {
                let id = input.id
                for (end, name) in [("from", id.from), ("to", id.to)] where try !transaction.contains(GraphKey.entity(team, name)) {
                    throw GraphStoreError(.failedPrecondition, "entity '\(name)' does not exist in team '\(team)'", field: "relations[\(index)].\(end)", reason: .notFound)
                }
                let key = GraphKey.outbound(team, id.from, id.relationType, id.to)
                if try transaction.contains(key) {
                    outcome.existing += 1
                    continue
                }
                let relation = Relation(team: team, id: id, confidence: input.confidence ?? 1, significance: input.significance ?? 5,
                                        createdAtMs: input.createdAtMs ?? transaction.now, metadata: input.metadata)
                transaction.put(key, try Self.record(relation))
                transaction.put(GraphKey.inbound(team, id.to, id.relationType, id.from), [])
                transaction.putBlind(GraphKey.relationType(team, id.relationType, id.from, id.to), [])
                try transaction.add(1, to: GraphKey.relationsCounter, team: team)
                try transaction.add(1, to: GraphKey.relationTypeCounter(id.relationType), team: team)
                try transaction.touch(team: team, at: transaction.now)
                try transaction.recordRelation(team: team, id, added: true)
                transaction.relationDelta += 1
                outcome.created += 1
            }
            return outcome
        }
    }

    /// Deletes the relations `ids` of `team`, atomically; unknown ones are skipped. Returns how
    /// many existed.
    public func deleteRelations(team: String, _ ids: [RelationID]) async throws -> Int {
        try await commits.commit { transaction in
            var deleted = 0
            for id in ids {
                guard try Self.removeRelation(team: team, id, in: transaction) else { continue }
                try transaction.touch(team: team, at: transaction.now)
                deleted += 1
            }
            return deleted
        }
    }

    // MARK: Pieces of a write

    /// Runs the rule checks, turning a broken rule into INVALID_ARGUMENT with its field, reason and rule.
    static func check(_ body: () throws(KnowledgeRuleError) -> Void) throws {
        do { try body() } catch { throw GraphStoreError(.invalidArgument, error.rule, field: error.field, reason: error.reason) }
    }

    /// An entity as it would be stored if new: defaults filled, observations deduplicated,
    /// encoded, its words counted.
    struct PreparedEntity: Sendable {
        var key: [UInt8]
        var entity: Entity
        var bytes: [UInt8]
        var words: [String: TextIndex.Hits]
        /// The change feed's hash of the new entity's content.
        var contentHash: String

        init(_ input: EntityInput, team: String, now: Int64) throws {
            key = GraphKey.entity(team, input.name)
            entity = Entity(team: team, name: input.name, entityType: input.entityType ?? "", observations: GraphStore.mergeObservations([], input.observations),
                            significance: input.significance ?? 5, confidence: input.confidence ?? 1, source: input.source ?? .manual,
                            metadata: input.metadata, createdAtMs: input.createdAtMs ?? input.lastModifiedMs ?? now, lastModifiedMs: input.lastModifiedMs ?? now)
            bytes = try GraphStore.record(entity)
            words = TextIndex.entries(of: entity)
            contentHash = ContentHash.of(entity)
        }
    }

    /// Refuses an entity that would pass the store's size limits (`GraphLimits`): too many
    /// observations, or a record of too many bytes. INVALID_ARGUMENT naming
    /// `entities[i].observations`, so the caller knows which entity and what to cut.
    static func checkSize(_ entity: Entity, bytes: Int, limits: GraphLimits, index: Int) throws {
        if entity.observations.count > limits.maxObservations {
            throw GraphStoreError(.invalidArgument, "entity '\(entity.name)' would hold \(entity.observations.count) observations, more than the limit of \(limits.maxObservations) (KB_GRAPH_MAX_OBSERVATIONS); split it or remove observations",
                                  field: "entities[\(index)].observations", reason: .tooMany)
        }
        if bytes > limits.maxEntityBytes {
            throw GraphStoreError(.invalidArgument, "entity '\(entity.name)' would take \(bytes) bytes, more than the limit of \(limits.maxEntityBytes) bytes (KB_GRAPH_MAX_ENTITY_BYTES); split it or shorten its observations",
                                  field: "entities[\(index)].observations", reason: .tooLong)
        }
    }

    static func upsert(_ input: EntityInput, prepared: PreparedEntity, team: String, index: Int, limits: GraphLimits, in transaction: GraphTransaction) throws -> (Entity, created: Bool) {
        let key = prepared.key
        guard let oldBytes = try transaction.get(key) else {
            guard input.entityType != nil else {
                throw GraphStoreError(.invalidArgument, "must be 1–\(KnowledgeRules.maxTypeLength) characters for a new entity (got 0)", field: "entities[\(index)].entity_type", reason: .required)
            }
            transaction.entityDelta += 1
            transaction.put(key, prepared.bytes)
            try updateIndexes(team: team, old: nil, new: prepared.entity, newWords: prepared.words, in: transaction)
            try transaction.touch(team: team, at: transaction.now)
            try transaction.recordUpsert(team: team, name: input.name, contentHash: prepared.contentHash)
            return (prepared.entity, true)
        }
        let old = try storedEntity(oldBytes)
        var entity = old
        if let entityType = input.entityType { entity.entityType = entityType }
        if let significance = input.significance { entity.significance = significance }
        if let confidence = input.confidence { entity.confidence = confidence }
        if let source = input.source { entity.source = source }
        entity.metadata.merge(input.metadata) { $1 }
        entity.observations = mergeObservations(old.observations, input.observations)
        entity.lastModifiedMs = input.lastModifiedMs ?? transaction.now
        if old == entity { return (entity, false) }
        // A merge may pass the limits that each write alone kept: checked on the merged record.
        let bytes = try record(entity)
        try checkSize(entity, bytes: bytes.count, limits: limits, index: index)
        transaction.put(key, bytes)
        try updateIndexes(team: team, old: old, new: entity, in: transaction)
        try transaction.touch(team: team, at: transaction.now)
        try transaction.recordUpsert(team: team, name: entity.name, contentHash: ContentHash.of(entity))
        return (entity, false)
    }

    /// Observations of `old`, then those of `new` not already there (same type and content).
    static func mergeObservations(_ old: [Observation], _ new: [Observation]) -> [Observation] {
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
    static func updateIndexes(team: String, old: Entity?, new: Entity?, newWords: [String: TextIndex.Hits]? = nil, in transaction: GraphTransaction) throws {
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
    static func removeRelation(team: String, _ id: RelationID, in transaction: GraphTransaction) throws -> Bool {
        let key = GraphKey.outbound(team, id.from, id.relationType, id.to)
        guard try transaction.contains(key) else { return false }
        transaction.delete(key)
        transaction.delete(GraphKey.inbound(team, id.to, id.relationType, id.from))
        transaction.deleteBlind(GraphKey.relationType(team, id.relationType, id.from, id.to))
        try transaction.add(-1, to: GraphKey.relationsCounter, team: team)
        try transaction.add(-1, to: GraphKey.relationTypeCounter(id.relationType), team: team)
        try transaction.recordRelation(team: team, id, added: false)
        transaction.relationDelta -= 1
        return true
    }
}
