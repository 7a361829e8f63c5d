import Foundation
import KBKnowledge
import Testing
@testable import GraphStoreKit

/// The store's own vocabulary: entities, relations and `GraphStoreError`, with no messages.
@Suite("Graph store values")
struct GraphValueTests {
    @Test("a new entity gets the defaults; an update takes only the fields given and merges observations")
    func defaultsAndMerge() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            let created = try await store.putEntities(team: "coding", [EntityInput(name: "Cache", entityType: "Pattern", observations: [Observation(content: "use LRU")])])
            #expect(created.created == 1 && created.updated == 0)
            let fresh = try #require(created.entities.first)
            #expect(fresh.team == "coding" && fresh.significance == 5 && fresh.confidence == 1 && fresh.source == .manual)
            #expect(fresh.createdAtMs == fresh.lastModifiedMs && fresh.createdAtMs > 0)

            let updated = try await store.putEntities(team: "coding", [EntityInput(name: "Cache", observations: [Observation(content: "use LRU"), Observation(content: "size 1k")],
                                                                                  confidence: 0.5, source: .auto, lastModifiedMs: fresh.lastModifiedMs + 10)])
            #expect(updated.created == 0 && updated.updated == 1)
            let found = try store.getEntity(team: "coding", name: "Cache")
            #expect(found.entity.entityType == "Pattern" && found.entity.significance == 5)
            #expect(found.entity.confidence == 0.5 && found.entity.source == .auto)
            #expect(found.entity.observations.map(\.content) == ["use LRU", "size 1k"])
            #expect(found.entity.lastModifiedMs == fresh.lastModifiedMs + 10 && found.entity.createdAtMs == fresh.createdAtMs)
            #expect(try store.verify().ok)
        }
    }

    @Test("a new entity without a type is an invalidArgument GraphStoreError naming its position, and nothing is written")
    func newEntityNeedsType() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            await #expect {
                try await store.putEntities(team: "coding", [EntityInput(name: "Typed", entityType: "Pattern"), EntityInput(name: "Untyped")])
            } throws: { error in
                let error = error as? GraphStoreError
                return error?.code == .invalidArgument && error?.field == "entities[1].entity_type"
            }
            #expect(throws: GraphStoreError.self) { try store.getEntity(team: "coding", name: "Typed") }
        }
    }

    @Test("relations: a missing end is failedPrecondition naming it; GetEntity returns both directions; deletes count what existed")
    func relations() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            _ = try await store.putEntities(team: "coding", ["A", "B"].map { EntityInput(name: $0, entityType: "Pattern") })
            let uses = RelationID(from: "A", relationType: "uses", to: "B")
            await #expect {
                try await store.putRelations(team: "coding", [RelationInput(id: uses), RelationInput(id: RelationID(from: "A", relationType: "uses", to: "Z"))])
            } throws: { error in
                let error = error as? GraphStoreError
                return error?.code == .failedPrecondition && error?.field == "relations[1].to" && error?.message == "entity 'Z' does not exist in team 'coding'"
            }
            let put = try await store.putRelations(team: "coding", [RelationInput(id: uses, significance: 8), RelationInput(id: uses)])
            #expect(put.created == 1 && put.existing == 1)
            let b = try store.getEntity(team: "coding", name: "B")
            #expect(b.inbound.map(\.id) == [uses] && b.outbound.isEmpty)
            #expect(b.inbound.first?.significance == 8 && b.inbound.first?.confidence == 1 && b.inbound.first?.team == "coding")
            #expect(try await store.deleteRelations(team: "coding", [uses, uses]) == 1)
            let deleted = try await store.deleteEntities(team: "coding", ["A", "missing"])
            #expect(deleted.deletedEntities == 1 && deleted.deletedRelations == 0)
            do {
                _ = try store.getEntity(team: "coding", name: "A")
                Issue.record("a deleted entity was found")
            } catch let error as GraphStoreError {
                #expect(error.code == .notFound)
                #expect(GraphStoreService.rpcError(error).code == .notFound)
            }
        }
    }

    @Test("a closed store refuses writes with unavailable")
    func closedStoreRefuses() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            store.close()
            await #expect {
                try await store.putEntities(team: "coding", [EntityInput(name: "Late", entityType: "Pattern")])
            } throws: { error in
                (error as? GraphStoreError)?.code == .unavailable
            }
        }
    }
}
