import Foundation
import KBProto
import KBRPC
import KBTestSupport
@testable import GraphStoreKit

/// A store in a fresh temporary folder, closed when the test ends.
func withStore<R>(_ body: (GraphStore, URL) async throws -> R) async throws -> R {
    let directory = temporaryDirectory("graph-store")
    let store = try GraphStore(directory: directory)
    defer {
        store.close()
        try? FileManager.default.removeItem(at: directory)
    }
    return try await body(store, directory)
}

func entity(_ name: String, _ type: String = "Pattern", _ observations: [String] = [], significance: Int32 = 0, confidence: Double = 0, source: Kb_Graph_V1_Source = .unspecified) -> Kb_Graph_V1_Entity {
    .with {
        $0.name = name
        $0.entityType = type
        $0.observations = observations.map { text in .with { $0.content = text } }
        $0.significance = significance
        $0.confidence = confidence
        $0.source = source
    }
}

func relation(_ from: String, _ type: String, _ to: String) -> Kb_Graph_V1_Relation {
    .with {
        $0.from = from
        $0.relationType = type
        $0.to = to
    }
}

/// The RPC face's methods on the store, so these tests state the behaviour a caller sees (rule
/// checks, translation, status codes) without a server.
extension GraphStore {
    func putEntities(_ request: Kb_Graph_V1_PutEntitiesRequest) async throws -> Kb_Graph_V1_PutEntitiesResponse {
        try await GraphStoreService.putEntities(request, in: self)
    }

    func deleteEntities(_ request: Kb_Graph_V1_DeleteEntitiesRequest) async throws -> Kb_Graph_V1_DeleteEntitiesResponse {
        try await GraphStoreService.deleteEntities(request, in: self)
    }

    func putRelations(_ request: Kb_Graph_V1_PutRelationsRequest) async throws -> Kb_Graph_V1_PutRelationsResponse {
        try await GraphStoreService.putRelations(request, in: self)
    }

    func deleteRelations(_ request: Kb_Graph_V1_DeleteRelationsRequest) async throws -> Kb_Graph_V1_DeleteRelationsResponse {
        try await GraphStoreService.deleteRelations(request, in: self)
    }

    func deleteObservations(_ request: Kb_Graph_V1_DeleteObservationsRequest) async throws -> Kb_Graph_V1_DeleteObservationsResponse {
        try await GraphStoreService.deleteObservations(request.canonical, in: self)
    }

    func getEntity(_ request: Kb_Graph_V1_GetEntityRequest) throws -> Kb_Graph_V1_GetEntityResponse {
        try GraphStoreService.getEntity(request, in: self)
    }
}

extension GraphStore {
    @discardableResult
    func put(_ team: String, _ entities: [Kb_Graph_V1_Entity]) async throws -> Kb_Graph_V1_PutEntitiesResponse {
        try await putEntities(.with { $0.team = team; $0.entities = entities })
    }

    @discardableResult
    func relate(_ team: String, _ relations: [Kb_Graph_V1_Relation]) async throws -> Kb_Graph_V1_PutRelationsResponse {
        try await putRelations(.with { $0.team = team; $0.relations = relations })
    }

    func names(_ team: String, text: String = "", limit: Int32 = 1000) throws -> [String] {
        try queryEntities(.with { $0.teams = [team]; $0.text = text; $0.limit = limit }).entities.map(\.name)
    }

    func exists(_ team: String, _ name: String) -> Bool {
        (try? getEntity(.with { $0.team = team; $0.name = name })) != nil
    }
}

/// The RPC status code of what `body` throws (a store error as the RPC face maps it), or nil
/// when it does not throw.
func code(_ body: () async throws -> Void) async -> (RPCError.Code, String)? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return (error.code, error.message)
    } catch let error as GraphStoreError {
        let status = GraphStoreService.rpcError(error)
        return (status.code, status.message)
    } catch {
        return (.unknown, "\(error)")
    }
}
