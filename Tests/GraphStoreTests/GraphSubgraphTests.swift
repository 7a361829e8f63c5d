import Foundation
import KBLevelDB
import KBProto
import KBRPC
import KBTestSupport
import Testing
@testable import GraphStoreKit

@Suite("Graph store subgraphs (VKB's drawing)")
struct GraphSubgraphTests {
    /// 300 entities with significance 1–10 and types by index, each related to the next two.
    func seed(_ store: GraphStore) async throws {
        var entities: [Kb_Graph_V1_Entity] = []
        for index in 0..<300 {
            entities.append(entity(String(format: "E%03d", index), ["Pattern", "Bug", "Tool"][index % 3], ["note \(index)"], significance: Int32(1 + index % 10), source: index % 4 == 0 ? .auto : (index % 4 == 1 ? .manual : .unspecified)))
        }
        try await store.put("t", entities)
        var relations: [Kb_Graph_V1_Relation] = []
        for index in 0..<300 {
            for step in 1...2 where index + step < 300 {
                relations.append(relation(String(format: "E%03d", index), step == 1 ? "next" : "skip", String(format: "E%03d", index + step)))
            }
        }
        try await store.relate("t", relations)
    }

    @Test("the cap keeps the most significant entities that pass the filters, and exactly the relations among them, compared with brute force")
    func matchesBruteForce() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await seed(store)
            let all = try store.queryEntities(.with { $0.teams = ["t"]; $0.limit = 1000 }).entities
            let allRelations = try store.queryRelations(.with { $0.teams = ["t"]; $0.limit = 1000 }).relations
            for (types, relationTypes, source, cap) in [([String](), [String](), Kb_Graph_V1_Source.unspecified, 50), (["Bug"], [], .unspecified, 40), (["Pattern", "Tool"], ["next"], .manual, 70), ([], [], .auto, 1000)] {
                let answer = try store.subgraph(.with {
                    $0.teams = ["t"]
                    $0.entityTypes = types
                    $0.relationTypes = relationTypes
                    $0.source = source
                    $0.maxEntities = Int32(cap)
                })
                let passing = all.filter { (types.isEmpty || types.contains($0.entityType)) && (source == .unspecified || ($0.source == .auto) == (source == .auto)) }
                let expected = passing.sorted { ($0.significance, $1.name) > ($1.significance, $0.name) }.prefix(cap)
                #expect(answer.entities.map(\.name) == expected.map(\.name), "\(types) \(source)")
                #expect(answer.matchingEntities == Int64(passing.count))
                #expect(answer.truncated == (passing.count > cap))
                #expect(answer.entities.allSatisfy { $0.observations.isEmpty }, "observations only when asked for")
                let chosen = Set(expected.map(\.name))
                let expectedRelations = allRelations.filter { chosen.contains($0.from) && chosen.contains($0.to) && (relationTypes.isEmpty || relationTypes.contains($0.relationType)) }
                #expect(Set(answer.relations.map { "\($0.from)-\($0.relationType)-\($0.to)" }) == Set(expectedRelations.map { "\($0.from)-\($0.relationType)-\($0.to)" }))
            }
            let focused = try store.subgraph(.with { $0.teams = ["t"]; $0.focus = "E150"; $0.focusTeam = "t"; $0.depth = 2; $0.withObservations = true })
            #expect(Set(focused.entities.map(\.name)) == ["E146", "E147", "E148", "E149", "E150", "E151", "E152", "E153", "E154"])
            #expect(focused.entities.first?.name == "E150" && focused.entities.first?.observations.count == 1)
            let manualAround = try store.subgraph(.with { $0.teams = ["t"]; $0.focus = "E150"; $0.focusTeam = "t"; $0.depth = 2; $0.source = .manual })
            #expect(Set(manualAround.entities.map(\.name)) == ["E146", "E147", "E149", "E150", "E151", "E153", "E154"], "unset counts as manual; the automatic E148 and E152 are left out")
            #expect(manualAround.entities.allSatisfy { $0.observations.isEmpty })
            #expect(await code { _ = try store.subgraph(.with { $0.teams = ["t"]; $0.focus = "Nope"; $0.focusTeam = "t" }) }?.0 == .notFound)
            #expect(await code { _ = try store.subgraph(.with { $0.teams = ["t"]; $0.maxEntities = 20_001 }) }?.0 == .invalidArgument)
            #expect(await code { _ = try store.subgraph(.with { $0.teams = [] }) }?.0 == .invalidArgument)
        }
    }

    @Test("the significance index follows updates and deletes, verify checks it, and a store without it gets it at open")
    func significanceIndexLifecycle() async throws {
        let directory = temporaryDirectory("graph-significance")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let store = try GraphStore(directory: directory)
            try await seed(store)
            try await store.put("t", [entity("E000", "Pattern", [], significance: 10)])
            _ = try await store.deleteEntities(.with { $0.team = "t"; $0.names = ["E009"] })
            let top = try store.subgraph(.with { $0.teams = ["t"]; $0.maxEntities = 3 }).entities.map(\.name)
            #expect(top == ["E000", "E019", "E029"], "E000 moved up, E009 is gone")
            #expect(try store.verify().ok)
            // A stale entry is a problem verify reports.
            try store.db.put(GraphKey.significance("t", 3, "Ghost"), [1] + Array("Bug".utf8))
            #expect(try store.verify().problems.contains { $0.contains("significance index has") })
            try store.db.delete(GraphKey.significance("t", 3, "Ghost"))
            // Drop the index and the format marker, as a store written before it existed.
            var keys: [[UInt8]] = []
            try store.db.forEach(prefix: [GraphKey.significance]) { key, _ in keys.append(key); return true }
            for key in keys { try store.db.delete(key) }
            try store.db.delete(GraphKey.formatKey)
            #expect(try !store.verify().ok)
            store.close()
        }
        let reopened = try GraphStore(directory: directory)
        defer { reopened.close() }
        #expect(try reopened.verify().ok, "opening rebuilt the index")
        #expect(try reopened.subgraph(.with { $0.teams = ["t"]; $0.maxEntities = 3 }).entities.map(\.name) == ["E000", "E019", "E029"])
    }
}
