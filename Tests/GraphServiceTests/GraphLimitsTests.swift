import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// "équipe" with a precomposed é (NFC) and with e + a combining acute accent (NFD): equal as
/// Swift Strings, different bytes.
let teamNFC = "\u{E9}quipe"
let teamNFD = "e\u{301}quipe"

/// An observation of `bytes` bytes of text (a word repeated), at most 64 KiB as the rules allow.
func observation(_ label: String, bytes: Int) -> Kb_Graph_V1_Observation {
    .with { $0.content = label + " " + String(repeating: "x", count: max(0, bytes - label.utf8.count - 1)) }
}

/// The status code of what `body` threw, nil when it did not throw.
func failure(_ body: () async throws -> Void) async -> RPCError? {
    do { try await body(); return nil } catch let error as RPCError { return error } catch { return RPCError(.unknown, "\(error)") }
}

@Suite("graph-store limits as a process: Unicode names, cancellation, bounded answers, entity size", .serialized)
struct GraphLimitsTests {
    @Test("issue 18 #5: team and entity names differing only in Unicode normalisation are one team and one entity; no request reads across them")
    func unicodeNormalisationIsOneName() async throws {
        #expect(teamNFC == teamNFD && Array(teamNFC.utf8) != Array(teamNFD.utf8), "the look-alike names are what the test needs")
        let store = try await GraphStoreUnderTest.start()
        defer { Task { await store.service.stop() } }
        let client = store.client()
        defer { Task { await client.close() } }

        // Two writers, one spelling each; a third team "equipe" (plain ASCII) looks alike too.
        _ = try await client.call(GraphStoreMethods.putEntities, .with {
            $0.team = teamNFC
            $0.entities = [.with { $0.name = "Caf\u{E9}"; $0.entityType = "Note"; $0.observations = [.with { $0.content = "written with NFC" }] }]
        })
        _ = try await client.call(GraphStoreMethods.putEntities, .with {
            $0.team = teamNFD
            $0.entities = [
                .with { $0.name = "Cafe\u{301}"; $0.entityType = "Note"; $0.observations = [.with { $0.content = "written with NFD" }] },
                .with { $0.name = "Secret"; $0.entityType = "Note"; $0.observations = [.with { $0.content = "the NFD writer's secret" }] },
            ]
        })
        _ = try await client.call(GraphStoreMethods.putRelations, .with {
            $0.team = teamNFD
            $0.relations = [.with { $0.from = "Secret"; $0.relationType = "mentions"; $0.to = "Caf\u{E9}" }]
        })
        _ = try await client.call(GraphStoreMethods.putEntities, .with {
            $0.team = "equipe"
            $0.entities = [.with { $0.name = "Caf\u{E9}"; $0.entityType = "Note"; $0.observations = [.with { $0.content = "plain ASCII team" }] }]
        })

        // One team, one entity "Café" holding both observations, stored under NFC bytes.
        let teams = try await client.call(GraphStoreMethods.listTeams, .init()).teams
        #expect(teams.count == 2, "\(teams.map { Array($0.team.utf8) })")
        let accented = try #require(teams.first { $0.team.utf8.elementsEqual(teamNFC.utf8) })
        #expect(accented.entityCount == 2 && accented.relationCount == 1)
        let stats = try await client.call(GraphStoreMethods.getStats, .with { $0.teams = [teamNFC, teamNFD] })
        #expect(stats.totalEntities == 2 && stats.totalRelations == 1)
        let cafe = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = teamNFD; $0.name = "Caf\u{E9}" })
        #expect(Set(cafe.entity.observations.map(\.content)) == ["written with NFC", "written with NFD"])
        #expect(cafe.entity.team.utf8.elementsEqual(teamNFC.utf8) && cafe.entity.name.utf8.elementsEqual("Caf\u{E9}".utf8))
        #expect(cafe.inbound.count == 1)

        // Both spellings in one query: the team once, each entity once.
        let both = try await client.call(GraphStoreMethods.queryEntities, .with { $0.teams = [teamNFC, teamNFD]; $0.limit = 100 })
        #expect(both.entities.map { Array($0.name.utf8) }.sorted { $0.lexicographicallyPrecedes($1) } == [Array("Caf\u{E9}".utf8), Array("Secret".utf8)])
        let bySpelling = try await client.call(GraphStoreMethods.queryEntities, .with { $0.teams = [teamNFD]; $0.sort = .modified; $0.limit = 100 })
        #expect(bySpelling.entities.count == 2)

        // A drawing asked for the NFC team around a focus named with the NFD team: only that
        // team's entities, by bytes; the ASCII look-alike never appears.
        let drawing = try await client.call(GraphStoreMethods.subgraph, .with {
            $0.teams = [teamNFC]; $0.focus = "Secret"; $0.focusTeam = teamNFD; $0.depth = 2; $0.withObservations = true
        })
        #expect(!drawing.entities.isEmpty)
        for entity in drawing.entities {
            #expect(entity.team.utf8.elementsEqual(teamNFC.utf8), "\(Array(entity.team.utf8))")
            #expect(!entity.observations.contains { $0.content == "plain ASCII team" })
        }
        // The ASCII team is another team: asking for it around an accented team's focus is refused.
        let crossing = await failure {
            _ = try await client.call(GraphStoreMethods.subgraph, .with { $0.teams = ["equipe"]; $0.focus = "Secret"; $0.focusTeam = teamNFD; $0.depth = 1 })
        }
        #expect(crossing?.code == .invalidArgument && crossing?.field == "focus_team")
        let ascii = try await client.call(GraphStoreMethods.queryEntities, .with { $0.teams = ["equipe"]; $0.limit = 100 })
        #expect(ascii.entities.map { $0.observations.map(\.content) } == [["plain ASCII team"]])
    }

    @Test("issue 18 #9: a depth-3 Subgraph whose deadline passes stops its work: it costs a fraction of the CPU of the same request answered")
    func expiredTraversalStopsWorking() async throws {
        let store = try await GraphStoreUnderTest.start()
        defer { Task { await store.service.stop() } }
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: store.service.port)
        configuration.connections = 1
        configuration.defaultTimeout = .seconds(300)
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }

        // 20,000 entities, each with 10 relations to others: three hops reach thousands.
        let count = 20_000
        for start in stride(from: 0, to: count, by: 2000) {
            _ = try await client.call(GraphStoreMethods.putEntities, .with {
                $0.team = "big"
                $0.omitEntities = true
                $0.entities = (start..<start + 2000).map { index in .with { $0.name = "n\(index)"; $0.entityType = "Node"; $0.observations = [.with { $0.content = "node \(index)" }] } }
            })
        }
        var generator = SeededGenerator(state: 18)
        let edges = (0..<count).flatMap { from in (0..<10).map { _ in (from, Int.random(in: 0..<count, using: &generator)) } }.filter { $0.0 != $0.1 }
        for start in stride(from: 0, to: edges.count, by: 10_000) {
            _ = try await client.call(GraphStoreMethods.putRelations, .with {
                $0.team = "big"
                $0.relations = edges[start..<min(start + 10_000, edges.count)].map { edge in .with { $0.from = "n\(edge.0)"; $0.relationType = "links"; $0.to = "n\(edge.1)" } }
            })
        }
        let request = Kb_Graph_V1_SubgraphRequest.with { $0.teams = ["big"]; $0.focus = "n0"; $0.focusTeam = "big"; $0.depth = 3; $0.maxEntities = 20_000 }
        let pid = store.service.process.processIdentifier

        // Answered: what the whole traversal costs.
        let before = await ProcessUsage.waitUntilIdle(pid)
        let answered = try await client.call(GraphStoreMethods.subgraph, request)
        #expect(answered.entities.count > 3000, "a traversal of thousands of entities (got \(answered.entities.count))")
        let full = await ProcessUsage.waitUntilIdle(pid) - before
        try #require(full >= 10, "the traversal must cost enough CPU to compare (\(full) ticks)")

        // Three times with deadline_ms = 1: each answered DEADLINE_EXCEEDED, and together they
        // cost under half of one answered traversal (before the fix: about three times it).
        let start = await ProcessUsage.waitUntilIdle(pid)
        for _ in 0..<3 {
            let error = await failure { _ = try await client.call(GraphStoreMethods.subgraph, request, options: CallOptions(timeout: .milliseconds(1))) }
            #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
        }
        let cancelled = await ProcessUsage.waitUntilIdle(pid) - start
        #expect(cancelled * 2 < full, "three expired traversals used \(cancelled) ticks; one answered traversal \(full)")

        // The service is still fine afterwards.
        #expect(try await client.call(GraphStoreMethods.subgraph, request).entities.count == answered.entities.count)
    }

    @Test("issue 18 #10: QueryEntities limit=1000 over large entities answers a partial page with a cursor under the frame limit; paging reads all; memory stays bounded")
    func answersStayUnderTheFrameLimit() async throws {
        // A 1 MiB frame limit and 100 KB entities: the shape of 16 MiB and 1 MB entities, at a
        // tenth of the bytes (a debug build decodes large records slowly).
        let service = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: ["KB_RPC_MAX_FRAME_BYTES": "1048576"])
        try await service.waitUntilReady()
        let store = GraphStoreUnderTest(service: service, backupDirectory: temporaryDirectory("graph-backups"))
        defer { Task { await store.service.stop() } }
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: store.service.port)
        configuration.defaultTimeout = .seconds(300)
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }
        let pid = store.service.process.processIdentifier

        // 40 entities of about 100 KB (2 observations of 50 KB), all linked to a hub.
        let names = (0..<40).map { String(format: "big %02d", $0) }
        for name in names {
            _ = try await client.call(GraphStoreMethods.putEntities, .with {
                $0.team = "heavy"
                $0.omitEntities = true
                $0.entities = [.with { $0.name = name; $0.entityType = "Blob"; $0.observations = (0..<2).map { observation("\(name) part \($0)", bytes: 50_000) } }]
            })
        }
        _ = try await client.call(GraphStoreMethods.putEntities, .with { $0.team = "heavy"; $0.entities = [.with { $0.name = "hub"; $0.entityType = "Hub" }] })
        _ = try await client.call(GraphStoreMethods.putRelations, .with {
            $0.team = "heavy"
            $0.relations = names.map { name in .with { $0.from = "hub"; $0.relationType = "holds"; $0.to = name } }
        })
        let baseline = ProcessUsage.residentBytes(pid)

        // By name (the streaming path) and by modified time (the sorted path): each page under
        // the 1 MiB frame, with a cursor, and the pages together hold every entity once.
        for sort in [Kb_Graph_V1_EntitySort.name, .modified] {
            var seen: [String] = []
            var cursor = ""
            var pages = 0
            repeat {
                let page = try await client.call(GraphStoreMethods.queryEntities, .with { $0.teams = ["heavy"]; $0.entityTypes = sort == .name ? [] : ["Blob"]; $0.sort = sort; $0.limit = 1000; $0.cursor = cursor })
                #expect(!page.entities.isEmpty && page.entities.count < 20, "a partial page (\(page.entities.count) entities)")
                #expect(try (page.serializedBytes() as [UInt8]).count < 1 << 20)
                seen += page.entities.map(\.name)
                cursor = page.nextCursor
                pages += 1
            } while !cursor.isEmpty && pages < 100
            #expect(Set(seen).count == seen.count, "no entity twice (\(sort))")
            #expect(Set(seen).isSuperset(of: names), "every entity read (\(sort)): \(seen.count)")
            #expect(pages >= 3)
        }

        // Neighbourhoods and drawings with observations stop at the limit and say so.
        let around = try await client.call(GraphStoreMethods.neighbors, .with { $0.team = "heavy"; $0.name = "hub"; $0.depth = 1; $0.maxEntities = 100 })
        #expect(around.truncated && around.entities.count > 1 && around.entities.count < 41)
        let drawing = try await client.call(GraphStoreMethods.subgraph, .with { $0.teams = ["heavy"]; $0.withObservations = true })
        #expect(drawing.truncated && drawing.entities.count < 41)
        let focused = try await client.call(GraphStoreMethods.subgraph, .with { $0.teams = ["heavy"]; $0.focus = "hub"; $0.focusTeam = "heavy"; $0.depth = 1; $0.withObservations = true })
        #expect(focused.truncated && focused.entities.count < 41)
        let outline = try await client.call(GraphStoreMethods.subgraph, .with { $0.teams = ["heavy"] })
        #expect(!outline.truncated && outline.entities.count == 41 && outline.relations.count == 40, "a drawing without observations is small and whole")

        // Memory: a generous bound over what the store held before the reads.
        let grown = ProcessUsage.residentBytes(pid) - baseline
        #expect(grown < 512 << 20, "resident memory grew by \(grown >> 20) MiB")
    }

    @Test("issue 18 #11: upserts that would merge an entity past its size or observation limit are refused naming `observations`, and change nothing")
    func entitySizeIsLimitedAtWriteTime() async throws {
        let service = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: ["KB_GRAPH_MAX_OBSERVATIONS": "100"])
        try await service.waitUntilReady()
        let store = GraphStoreUnderTest(service: service, backupDirectory: temporaryDirectory("graph-backups"))
        defer { Task { await store.service.stop() } }
        let client = store.client()
        defer { Task { await client.close() } }

        // Bytes: three upserts of 25 observations of 60 KB (1.5 MB each, each legal alone).
        func grow(_ round: Int) async throws {
            _ = try await client.call(GraphStoreMethods.putEntities, .with {
                $0.team = "t"
                $0.omitEntities = true
                $0.entities = [.with { $0.name = "Big"; $0.entityType = "Blob"; $0.observations = (0..<25).map { observation("round \(round) part \($0)", bytes: 60_000) } }]
            })
        }
        try await grow(1)
        try await grow(2)
        let third = await failure { try await grow(3) }
        #expect(third?.code == .invalidArgument && third?.field == "entities[0].observations" && third?.reason == .tooLong, "\(String(describing: third))")
        #expect(third?.message.contains("KB_GRAPH_MAX_ENTITY_BYTES") == true)
        let big = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = "t"; $0.name = "Big" })
        #expect(big.entity.observations.count == 50, "nothing of the refused upsert was stored")

        // Count: 40 + 40 small observations fit under 100; 40 more do not. A refused request
        // writes none of its entities.
        func add(_ round: Int) async throws {
            _ = try await client.call(GraphStoreMethods.putEntities, .with {
                $0.team = "t"
                $0.entities = [
                    .with { $0.name = "Bystander \(round)"; $0.entityType = "Note" },
                    .with { $0.name = "Many"; $0.entityType = "List"; $0.observations = (0..<40).map { index in .with { $0.content = "item \(round).\(index)" } } },
                ]
            })
        }
        try await add(1)
        try await add(2)
        let refused = await failure { try await add(3) }
        #expect(refused?.code == .invalidArgument && refused?.field == "entities[1].observations" && refused?.reason == .tooMany, "\(String(describing: refused))")
        #expect(try await client.call(GraphStoreMethods.getEntity, .with { $0.team = "t"; $0.name = "Many" }).entity.observations.count == 80)
        let bystander = await failure { _ = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = "t"; $0.name = "Bystander 3" }) }
        #expect(bystander?.code == .notFound)

        // ukb passes the refusal through in one line naming the field.
        let ukb = try store.ukb("add-entity", "--name", "Many", "--type", "List", "--team", "t",
                                "--observation", "one", "--observation", "two", "--observation", "three", "--observation", "four",
                                "--observation", "five", "--observation", "six", "--observation", "seven", "--observation", "eight",
                                "--observation", "nine", "--observation", "ten", "--observation", "eleven", "--observation", "twelve",
                                "--observation", "thirteen", "--observation", "fourteen", "--observation", "fifteen", "--observation", "sixteen",
                                "--observation", "seventeen", "--observation", "eighteen", "--observation", "nineteen", "--observation", "twenty",
                                "--observation", "twenty-one")
        #expect(ukb.status != 0)
        #expect(ukb.stderr.contains("observations") && ukb.stderr.contains("KB_GRAPH_MAX_OBSERVATIONS"), "\(ukb.stderr)")
        #expect(ukb.stderr.split(separator: "\n").count == 1, "\(ukb.stderr)")

        // Everything stored can be read back whole.
        #expect(try store.ukb("show", "Big", "--team", "t").status == 0)
    }
}
