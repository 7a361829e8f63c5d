import Foundation
import KBProto
import KBRPC
import Testing
@testable import GraphStoreKit

@Suite("Graph store reads")
struct GraphQueryTests {
    @Test("no read of one team returns another team's data")
    func teamIsolation() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("alpha", [entity("Shared Name", "Pattern", ["alpha secret"]), entity("Only Alpha")])
            try await store.put("beta", [entity("Shared Name", "Bug", ["beta secret"])])
            try await store.relate("alpha", [relation("Shared Name", "uses", "Only Alpha")])

            #expect(try store.names("beta") == ["Shared Name"])
            #expect(try store.names("beta", text: "secret") == ["Shared Name"])
            #expect(try store.queryEntities(.with { $0.teams = ["beta"]; $0.text = "alpha" }).entities.isEmpty)
            #expect(try store.getEntity(.with { $0.team = "beta"; $0.name = "Shared Name" }).entity.observations.map(\.content) == ["beta secret"])
            #expect(try store.getEntity(.with { $0.team = "beta"; $0.name = "Shared Name" }).outbound.isEmpty)
            #expect(await code { _ = try store.getEntity(.with { $0.team = "beta"; $0.name = "Only Alpha" }) }?.0 == .notFound)
            #expect(try store.queryRelations(.with { $0.teams = ["beta"] }).relations.isEmpty)
            #expect(try store.neighbors(.with { $0.team = "beta"; $0.name = "Shared Name"; $0.depth = 3 }).entities.count == 1)
            #expect(try store.stats(.with { $0.teams = ["beta"] }).totalEntities == 1)
            #expect(try store.stats(.with { $0.teams = ["beta"] }).entitiesByType == ["Bug": 1])
            // Asking for several teams is explicit.
            let both = try store.queryEntities(.with { $0.teams = ["alpha", "beta"]; $0.text = "secret" }).entities
            #expect(Set(both.map(\.team)) == ["alpha", "beta"])
            #expect(await code { _ = try store.queryEntities(.init()) }?.0 == .invalidArgument)
            #expect(try store.listTeams().teams.map(\.team) == ["alpha", "beta"])
        }
    }

    @Test("text search matches names and observations, any case, every word as a word prefix, names ranked first")
    func textSearch() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("coding", [
                entity("Authentication Flow", "Pattern", ["tokens are refreshed"]),
                entity("Session Bug", "Bug", ["AUTHENTICATION fails after token expiry"]),
                entity("Logging", "Pattern", ["structured logs"]),
            ])
            let result = try store.queryEntities(.with { $0.teams = ["coding"]; $0.text = "authentication" })
            #expect(result.entities.map(\.name) == ["Authentication Flow", "Session Bug"])
            #expect(result.scores.count == 2 && result.scores[0] > result.scores[1])
            #expect(try store.names("coding", text: "auth") == ["Authentication Flow", "Session Bug"])
            #expect(try store.names("coding", text: "Token EXP") == ["Session Bug"])
            #expect(try store.names("coding", text: "auth logs").isEmpty)
            #expect(try store.queryEntities(.with { $0.teams = ["coding"]; $0.text = "auth"; $0.entityTypes = ["Bug"] }).entities.map(\.name) == ["Session Bug"])
            #expect(await code { _ = try store.queryEntities(.with { $0.teams = ["coding"]; $0.text = "!!" }) }?.0 == .invalidArgument)
        }
    }

    @Test("filters by type, source, confidence and modified time; sorts both ways")
    func filtersAndSorts() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("coding", [entity("A", "Pattern", significance: 3, confidence: 0.5, source: .auto), entity("B", "Bug", significance: 9, confidence: 0.9), entity("C", "Pattern", significance: 6)])
            let cutoff = Int64(Date().timeIntervalSince1970 * 1000) + 1
            try await Task.sleep(for: .milliseconds(10))
            try await store.put("coding", [entity("D", "Decision", significance: 1, source: .auto)])
            func query(_ build: (inout Kb_Graph_V1_QueryEntitiesRequest) -> Void) throws -> [String] {
                var request = Kb_Graph_V1_QueryEntitiesRequest()
                request.teams = ["coding"]
                build(&request)
                return try store.queryEntities(request).entities.map(\.name)
            }
            #expect(try query { $0.entityTypes = ["Pattern"] } == ["A", "C"])
            #expect(try query { $0.source = .auto } == ["A", "D"])
            #expect(try query { $0.minConfidence = 0.8 } == ["B", "C", "D"])
            #expect(try query { $0.modifiedAfterMs = cutoff } == ["D"])
            #expect(try query { $0.modifiedBeforeMs = cutoff } == ["A", "B", "C"])
            #expect(try query { $0.sort = .significance; $0.descending = true } == ["B", "C", "A", "D"])
            #expect(try query { $0.sort = .name; $0.descending = true } == ["D", "C", "B", "A"])
            #expect(try query { $0.sort = .confidence; $0.source = .auto } == ["A", "D"])
        }
    }

    @Test("cursor paging sees every entity exactly once while other entities are written and deleted")
    func pagingIsStableUnderWrites() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            let original = (0..<120).map { String(format: "item %03d", $0) }
            try await store.put("coding", original.map { entity($0) })
            for sort in [Kb_Graph_V1_EntitySort.name, .significance, .created] {
                var seen: [String] = []
                var cursor = ""
                var page = 0
                repeat {
                    let response = try store.queryEntities(.with { $0.teams = ["coding"]; $0.limit = 25; $0.cursor = cursor; $0.sort = sort })
                    seen += response.entities.map(\.name)
                    cursor = response.nextCursor
                    // Writes between pages: new names on both sides of the cursor, and deletes.
                    try await store.put("coding", [entity("aaa new \(sort) \(page)"), entity("zzz new \(sort) \(page)")])
                    _ = try await store.deleteEntities(.with { $0.team = "coding"; $0.names = ["aaa new \(sort) \(page)"] })
                    page += 1
                } while !cursor.isEmpty
                #expect(Set(seen).count == seen.count, "no entity twice with sort \(sort)")
                #expect(Set(original).isSubset(of: Set(seen)), "every original entity once with sort \(sort)")
            }
            #expect(await code { _ = try store.queryEntities(.with { $0.teams = ["coding"]; $0.cursor = "not a cursor!" }) }?.0 == .invalidArgument)
        }
    }

    @Test("relation queries by entity and direction, by type, and paged")
    func relationQueries() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            try await store.put("coding", (0..<30).map { entity("n\($0)") })
            try await store.relate("coding", (1..<30).map { relation("n0", $0 % 2 == 0 ? "even" : "odd", "n\($0)") } + [relation("n5", "back", "n0")])
            #expect(try store.queryRelations(.with { $0.teams = ["coding"]; $0.entity = "n0"; $0.direction = .inbound }).relations.map(\.from) == ["n5"])
            #expect(try store.queryRelations(.with { $0.teams = ["coding"]; $0.entity = "n0"; $0.direction = .outbound }).relations.count == 29)
            #expect(try store.queryRelations(.with { $0.teams = ["coding"]; $0.entity = "n0" }).relations.count == 30)
            #expect(try store.queryRelations(.with { $0.teams = ["coding"]; $0.relationTypes = ["back"] }).relations.map(\.to) == ["n0"])
            var all: [String] = []
            var cursor = ""
            repeat {
                let page = try store.queryRelations(.with { $0.teams = ["coding"]; $0.limit = 7; $0.cursor = cursor })
                all += page.relations.map { "\($0.from) \($0.relationType) \($0.to)" }
                cursor = page.nextCursor
            } while !cursor.isEmpty
            #expect(all.count == 30 && Set(all).count == 30)
            var typed: [String] = []
            repeat {
                let page = try store.queryRelations(.with { $0.teams = ["coding"]; $0.relationTypes = ["odd"]; $0.limit = 4; $0.cursor = cursor })
                typed += page.relations.map(\.to)
                cursor = page.nextCursor
            } while !cursor.isEmpty
            #expect(typed.count == 15 && Set(typed).count == 15)
        }
    }

    @Test("neighbours by depth, direction, relation and entity type, with a cap; shortest paths")
    func traversal() async throws {
        try await withStore { (store: GraphStore, _: URL) async throws in
            // a -> b -> c -> d -> e -> f, and a -> x (type Bug), x -[fixes]-> f
            try await store.put("g", ["a", "b", "c", "d", "e", "f"].map { entity($0) } + [entity("x", "Bug")])
            try await store.relate("g", [relation("a", "next", "b"), relation("b", "next", "c"), relation("c", "next", "d"), relation("d", "next", "e"), relation("e", "next", "f"), relation("a", "has", "x"), relation("x", "fixes", "f")])
            let two = try store.neighbors(.with { $0.team = "g"; $0.name = "a"; $0.depth = 2 })
            #expect(Set(two.entities.map(\.name)) == ["a", "b", "c", "x", "f"])
            #expect(two.depthByName["c"] == 2 && two.depthByName["x"] == 1 && two.depthByName["a"] == 0)
            #expect(two.relations.count == 4)
            let typed = try store.neighbors(.with { $0.team = "g"; $0.name = "a"; $0.depth = 5; $0.relationTypes = ["next"] })
            #expect(typed.entities.count == 6)
            let inbound = try store.neighbors(.with { $0.team = "g"; $0.name = "c"; $0.depth = 5; $0.direction = .inbound })
            #expect(Set(inbound.entities.map(\.name)) == ["c", "b", "a"])
            let noBugs = try store.neighbors(.with { $0.team = "g"; $0.name = "a"; $0.depth = 1; $0.entityTypes = ["Pattern"] })
            #expect(Set(noBugs.entities.map(\.name)) == ["a", "b"])
            let capped = try store.neighbors(.with { $0.team = "g"; $0.name = "a"; $0.depth = 5; $0.maxEntities = 3 })
            #expect(capped.entities.count == 3 && capped.truncated)
            #expect(await code { _ = try store.neighbors(.with { $0.team = "g"; $0.name = "a"; $0.depth = 6 }) }?.0 == .invalidArgument)
            #expect(await code { _ = try store.neighbors(.with { $0.team = "g"; $0.name = "zz"; $0.depth = 1 }) }?.0 == .notFound)

            let path = try store.shortestPath(.with { $0.team = "g"; $0.from = "a"; $0.to = "f" })
            #expect(path.found && path.names == ["a", "x", "f"])
            #expect(path.relations.map(\.relationType) == ["has", "fixes"])
            let onlyNext = try store.shortestPath(.with { $0.team = "g"; $0.from = "a"; $0.to = "f"; $0.relationTypes = ["next"] })
            #expect(onlyNext.names == ["a", "b", "c", "d", "e", "f"])
            #expect(try !store.shortestPath(.with { $0.team = "g"; $0.from = "f"; $0.to = "a"; $0.direction = .outbound }).found)
            #expect(try store.shortestPath(.with { $0.team = "g"; $0.from = "f"; $0.to = "a"; $0.direction = .inbound }).names == ["f", "x", "a"])
            #expect(try !store.shortestPath(.with { $0.team = "g"; $0.from = "a"; $0.to = "e"; $0.relationTypes = ["next"]; $0.maxDepth = 3 }).found)
        }
    }

    @Test("a backup taken while writers run restores to a store that verifies, with the backup's counts")
    func backupWhileWritingThenRestore() async throws {
        try await withStore { (store: GraphStore, directory: URL) async throws in
            try await store.put("coding", (0..<200).map { entity("seed \($0)", "Seed", ["seed number \($0)"]) })
            let backupDirectory = directory.appendingPathComponent("backup-1")
            let writers = Task {
                var index = 0
                while !Task.isCancelled {
                    try await store.put("coding", [entity("live \(index)", "Live", ["written during backup"])])
                    if index > 0 { try await store.relate("coding", [relation("live \(index)", "follows", "live \(index - 1)")]) }
                    index += 1
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            let backup = try store.backup(to: backupDirectory.path)
            writers.cancel()
            _ = await writers.result
            #expect(backup.entities >= 200)
            #expect(FileManager.default.fileExists(atPath: backupDirectory.appendingPathComponent(GraphStore.backupManifest).path))
            #expect(await code { _ = try store.backup(to: backupDirectory.path) }?.0 == .alreadyExists)
            #expect(await code { _ = try store.backup(to: "relative/path") }?.0 == .invalidArgument)

            let target = directory.appendingPathComponent("restored-data")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            let report = try GraphStore.restore(from: backupDirectory, into: target)
            #expect(report.entities == backup.entities && report.relations == backup.relations)
            let restored = try GraphStore(directory: target)
            defer { restored.close() }
            #expect(try restored.verify().ok)
            let stats = try restored.stats(.init())
            #expect(stats.totalEntities == backup.entities && stats.totalRelations == backup.relations)
        }
    }
}
