import Foundation
import KBProto
import KBRPC
import Testing
@testable import GraphStoreKit

@Suite("Graph store writes")
struct GraphWriteTests {
    @Test("an invalid entity anywhere in a batch is INVALID_ARGUMENT naming field and rule, and nothing is written")
    func invalidEntityWritesNothing() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            let failure = await code { try await store.put("coding", [entity("Good One"), entity("bad:name")]) }
            #expect(failure?.0 == .invalidArgument)
            #expect(failure?.1.contains("entities[1].name") == true)
            #expect(failure?.1.contains("letters, digits") == true)
            #expect(!store.exists("coding", "Good One"))

            for bad in [entity(String(repeating: "x", count: 201)), entity(""), entity("ok", ""), entity("ok", significance: 11), entity("ok", confidence: 1.5), entity(" lead")] {
                #expect(await code { try await store.put("coding", [bad]) }?.0 == .invalidArgument)
            }
            #expect(await code { try await store.put("bad team!", [entity("x")]) }?.1.contains("team") == true)
            #expect(try store.stats(.init()).totalEntities == 0)
            #expect(try store.verify().ok)
        }
    }

    @Test("upsert merges observations without duplicates and keeps created, moves last_modified")
    func upsertMerges() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            let first = try await store.put("coding", [entity("Cache", "Pattern", ["use LRU", "size 1k"], significance: 7)])
            #expect(first.created == 1)
            try await Task.sleep(for: .milliseconds(5))
            let second = try await store.put("coding", [.with {
                $0.name = "Cache"
                $0.observations = [.with { $0.content = "size 1k" }, .with { $0.content = "evict on write" }]
                $0.confidence = 0.8
            }])
            #expect(second.updated == 1 && second.created == 0)
            let stored = try store.getEntity(.with { $0.team = "coding"; $0.name = "Cache" }).entity
            #expect(stored.observations.map(\.content) == ["use LRU", "size 1k", "evict on write"])
            #expect(stored.entityType == "Pattern")
            #expect(stored.significance == 7)
            #expect(stored.confidence == 0.8)
            #expect(stored.createdAtMs == first.entities[0].createdAtMs)
            #expect(stored.lastModifiedMs > first.entities[0].lastModifiedMs)
            #expect(try store.names("coding", text: "evict") == ["Cache"])
            let quiet = try await store.putEntities(.with { $0.team = "coding"; $0.entities = [entity("Quiet")]; $0.omitEntities = true })
            #expect(quiet.created == 1 && quiet.entities.isEmpty)
            #expect(store.exists("coding", "Quiet"))
            #expect(try store.verify().ok)
        }
    }

    @Test("DeleteObservations removes observations by content in one write: other fields, creation time and relations stay, the word index and the feed follow, missing names are listed")
    func deleteObservations() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            let first = try await store.put("coding", [entity("Cache", "Pattern", ["use LRU", "size 1k", "evict on write"], significance: 7, source: .auto), entity("Store")])
            try await store.relate("coding", [relation("Cache", "backs", "Store")])
            let head = try await store.listChanges().headSeq
            let deletions: [Kb_Graph_V1_ObservationDeletion] = [
                .with { $0.name = "Cache"; $0.contents = ["size 1k", "evict on write", "never there"] },
                .with { $0.name = "Ghost"; $0.contents = ["x"] },
            ]
            let answer = try await store.deleteObservations(.with { $0.team = "coding"; $0.deletions = deletions })
            #expect(answer.deleted == 2 && answer.missing == ["Ghost"])
            let stored = try store.getEntity(.with { $0.team = "coding"; $0.name = "Cache" })
            #expect(stored.entity.observations.map(\.content) == ["use LRU"])
            #expect(stored.entity.significance == 7 && stored.entity.source == .auto && stored.entity.entityType == "Pattern")
            #expect(stored.entity.createdAtMs == first.entities[0].createdAtMs)
            #expect(stored.outbound.map(\.to) == ["Store"], "relations stay")
            #expect(try store.names("coding", text: "evict").isEmpty)
            #expect(try store.names("coding", text: "LRU") == ["Cache"])
            let feed = try await store.listChanges(after: head)
            #expect(feed.changes.map(\.kind) == [.entityUpserted] && feed.changes.first?.name == "Cache")

            // Nothing left to remove: no write, no change.
            let again = try await store.deleteObservations(.with { $0.team = "coding"; $0.deletions = deletions })
            #expect(again.deleted == 0 && again.missing == ["Ghost"])
            #expect(try await store.listChanges(after: head).changes.count == 1)
            #expect(await code { try await store.deleteObservations(.with { $0.team = "coding" }) }?.0 == .invalidArgument)
            #expect(await code { try await store.deleteObservations(.with { $0.team = "coding"; $0.deletions = [.with { $0.name = "bad:name" }] }) }?.1.contains("deletions[0].name") == true)
            #expect(try store.verify().ok)
        }
    }

    @Test("a relation needs both ends in the team: FAILED_PRECONDITION names the missing end and the batch writes nothing")
    func relationEndsMustExist() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("coding", [entity("A"), entity("B")])
            try await store.put("other", [entity("C")])
            let failure = await code { try await store.relate("coding", [relation("A", "uses", "B"), relation("A", "uses", "C")]) }
            #expect(failure?.0 == .failedPrecondition)
            #expect(failure?.1 == "relations[1].to: entity 'C' does not exist in team 'coding'")
            #expect(try store.stats(.init()).totalRelations == 0)

            let created = try await store.relate("coding", [relation("A", "uses", "B"), relation("A", "uses", "B"), relation("B", "uses", "A")])
            #expect(created.created == 2 && created.existing == 1)
            #expect(try await store.relate("coding", [relation("A", "uses", "B")]).existing == 1)
            #expect(try store.stats(.init()).totalRelations == 2)
        }
    }

    @Test("deleting an entity deletes every relation touching it, in both directions, atomically")
    func cascadeDelete() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("coding", [entity("Hub"), entity("Left"), entity("Right"), entity("Far")])
            try await store.relate("coding", [relation("Left", "uses", "Hub"), relation("Hub", "uses", "Right"), relation("Hub", "self", "Hub"), relation("Right", "uses", "Far")])
            let deleted = try await store.deleteEntities(.with { $0.team = "coding"; $0.names = ["Hub", "Missing"] })
            #expect(deleted.deletedEntities == 1)
            #expect(deleted.deletedRelations == 3)
            #expect(!store.exists("coding", "Hub"))
            let left = try store.getEntity(.with { $0.team = "coding"; $0.name = "Left" })
            #expect(left.outbound.isEmpty && left.inbound.isEmpty)
            let remaining = try store.queryRelations(.with { $0.teams = ["coding"] }).relations
            #expect(remaining.map { "\($0.from)-\($0.to)" } == ["Right-Far"])
            let stats = try store.stats(.init())
            #expect(stats.totalEntities == 3 && stats.totalRelations == 1)
            #expect(stats.relationsByType == ["uses": 1])
            #expect(try store.verify().ok)
        }
    }

    @Test("concurrent writers are all acknowledged and all present (group commit)")
    func concurrentWriters() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<16 {
                    group.addTask {
                        for index in 0..<25 { try await store.put("load", [entity("w\(writer) e\(index)", "Load", ["writer \(writer) item \(index)"])]) }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try store.stats(.init()).totalEntities == 400)
            #expect(store.totalCounts.entities == 400)
            #expect(try store.verify().ok)
        }
    }

    @Test("verify reports an index entry that lost its record, and a record that lost its index entry")
    func verifyFindsCorruption() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("coding", [entity("Alpha", "Pattern", ["one word"]), entity("Beta")])
            try await store.relate("coding", [relation("Alpha", "uses", "Beta")])
            #expect(try store.verify().ok)
            try store.db.delete(GraphKey.inbound("coding", "Beta", "uses", "Alpha"))
            try store.db.put(GraphKey.entityType("coding", "Ghost", "Nobody"), [])
            let report = try store.verify()
            #expect(!report.ok)
            #expect(report.problems.contains { $0.contains("missing from the inbound index") })
            #expect(report.problems.contains { $0.contains("the type index has 3 entries") })
        }
    }
}
