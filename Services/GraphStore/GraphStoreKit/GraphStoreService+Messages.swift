import KBKnowledge
import KBLevelDB
import KBProto
import KBRPC

/// The translation between `kb.graph.v1` messages and the store's values: each request is
/// checked against `KnowledgeRules` once, here, turned into values, and the store's answer (or
/// `GraphStoreError`) turned back into a response (or an `RPCError`).
///
/// Translated so far: PutEntities, DeleteEntities, PutRelations, DeleteRelations,
/// DeleteObservations, GetEntity.
/// The other methods still take and give messages (`GraphStore+Queries`, `+Subgraph`,
/// `+Traversal`, `+Maintenance`); only their errors pass through `mapped`.
extension GraphStoreService {
    static func putEntities(_ request: Kb_Graph_V1_PutEntitiesRequest, in store: GraphStore) async throws -> Kb_Graph_V1_PutEntitiesResponse {
        try checked { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            guard !request.entities.isEmpty else { throw KnowledgeRuleError(field: "entities", "must hold at least one entity") }
            for (index, entity) in request.entities.enumerated() {
                try KnowledgeRules.check(entity, field: "entities[\(index)]", isUpdate: true)
            }
        }
        let outcome = try await mapped {
            try await store.putEntities(team: request.team, request.entities.map(EntityInput.init), returningEntities: !request.omitEntities)
        }
        var response = Kb_Graph_V1_PutEntitiesResponse()
        response.entities = outcome.entities.map(\.message)
        response.created = Int32(outcome.created)
        response.updated = Int32(outcome.updated)
        return response
    }

    static func deleteEntities(_ request: Kb_Graph_V1_DeleteEntitiesRequest, in store: GraphStore) async throws -> Kb_Graph_V1_DeleteEntitiesResponse {
        try checked { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            for (index, name) in request.names.enumerated() { try KnowledgeRules.checkName(name, field: "names[\(index)]") }
        }
        let outcome = try await mapped { try await store.deleteEntities(team: request.team, request.names) }
        var response = Kb_Graph_V1_DeleteEntitiesResponse()
        response.deletedEntities = Int32(outcome.deletedEntities)
        response.deletedRelations = Int32(outcome.deletedRelations)
        return response
    }

    static func putRelations(_ request: Kb_Graph_V1_PutRelationsRequest, in store: GraphStore) async throws -> Kb_Graph_V1_PutRelationsResponse {
        try checked { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            guard !request.relations.isEmpty else { throw KnowledgeRuleError(field: "relations", "must hold at least one relation") }
            for (index, relation) in request.relations.enumerated() { try KnowledgeRules.check(relation, field: "relations[\(index)]") }
        }
        let outcome = try await mapped { try await store.putRelations(team: request.team, request.relations.map(RelationInput.init)) }
        var response = Kb_Graph_V1_PutRelationsResponse()
        response.created = Int32(outcome.created)
        response.existing = Int32(outcome.existing)
        return response
    }

    static func deleteRelations(_ request: Kb_Graph_V1_DeleteRelationsRequest, in store: GraphStore) async throws -> Kb_Graph_V1_DeleteRelationsResponse {
        try checked { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            for (index, relation) in request.relations.enumerated() {
                try KnowledgeRules.checkName(relation.from, field: "relations[\(index)].from")
                try KnowledgeRules.checkName(relation.to, field: "relations[\(index)].to")
                try KnowledgeRules.checkType(relation.relationType, field: "relations[\(index)].relation_type")
            }
        }
        let deleted = try await mapped { try await store.deleteRelations(team: request.team, request.relations.map(RelationID.init)) }
        var response = Kb_Graph_V1_DeleteRelationsResponse()
        response.deleted = Int32(deleted)
        return response
    }

    static func deleteObservations(_ request: Kb_Graph_V1_DeleteObservationsRequest, in store: GraphStore) async throws -> Kb_Graph_V1_DeleteObservationsResponse {
        try checked { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            guard !request.deletions.isEmpty else { throw KnowledgeRuleError(field: "deletions", "must hold at least one deletion") }
            for (index, deletion) in request.deletions.enumerated() { try KnowledgeRules.checkName(deletion.name, field: "deletions[\(index)].name") }
        }
        let outcome = try await mapped {
            try await store.deleteObservations(team: request.team, request.deletions.map { ObservationDeletion(name: $0.name, contents: $0.contents) })
        }
        var response = Kb_Graph_V1_DeleteObservationsResponse()
        response.deleted = Int32(outcome.deleted)
        response.missing = outcome.missing
        return response
    }

    static func getEntity(_ request: Kb_Graph_V1_GetEntityRequest, in store: GraphStore) throws -> Kb_Graph_V1_GetEntityResponse {
        try checked { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            try KnowledgeRules.checkName(request.name, field: "name")
        }
        let found: EntityWithRelations
        found = try mapped { try store.getEntity(team: request.team, name: request.name) }
        var response = Kb_Graph_V1_GetEntityResponse()
        response.entity = found.entity.message
        response.outbound = found.outbound.map(\.message)
        response.inbound = found.inbound.map(\.message)
        return response
    }

    // MARK: Errors

    /// Runs rule checks, turning a broken rule into INVALID_ARGUMENT naming the field and rule.
    static func checked(_ body: () throws(KnowledgeRuleError) -> Void) throws(RPCError) {
        do { try body() } catch { throw RPCError.invalidArgument(field: error.field, reason: error.reason, error.rule) }
    }

    /// Runs `body`, turning a `GraphStoreError` into the `RPCError` a caller sees.
    static func mapped<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let error as GraphStoreError { throw rpcError(error) } catch let error as LevelDB.Error { throw rpcError(error) }
    }

    /// Runs `body`, turning a `GraphStoreError` into the `RPCError` a caller sees.
    static func mapped<R>(_ body: () async throws -> R) async throws -> R {
        do { return try await body() } catch let error as GraphStoreError { throw rpcError(error) } catch let error as LevelDB.Error { throw rpcError(error) }
    }

    /// The status of a LevelDB failure, with LevelDB's reason (not a bare "internal error"):
    /// `DATA_LOSS` when the database is damaged, `INTERNAL` otherwise.
    static func rpcError(_ error: LevelDB.Error) -> RPCError {
        RPCError(error.code == .damaged ? .dataLoss : .internal, "graph store: \(error)")
    }

    /// The status of a store error: its code, its message, and the field it is about.
    static func rpcError(_ error: GraphStoreError) -> RPCError {
        let code: RPCError.Code = switch error.code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .failedPrecondition: .failedPrecondition
        case .dataLoss: .dataLoss
        case .unavailable: .unavailable
        case .internalError: .internal
        }
        return RPCError(code: code, message: error.description, field: error.field, reason: error.reason)
    }
}
