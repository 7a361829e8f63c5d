import Foundation
import KBProto
import KBRPC
import KBTestSupport
import MCP
import Testing
import UKBKit

/// `ukb mcp` driven by a real MCP client — the `mcp` package from PyPI, over stdio
/// (`Tests/Fixtures/mcp/mcp_session.py`) — against graph-store, vector-search and the gateway's
/// indexer as processes: every tool called, the writes checked in the graph store, an entity
/// created over MCP found by meaning, and the degraded word search when vector-search is down.
@Suite("ukb mcp, a real MCP client over stdio", .serialized)
struct UKBMCPTests {
    /// One MCP session: `steps` called in order; the session's transcript as JSON.
    func session(_ system: IndexedSystem, team: String = "eng", _ steps: [[String: Any]]) throws -> Transcript {
        let folder = temporaryDirectory("kb-mcp")
        defer { try? FileManager.default.removeItem(at: folder) }
        let stepsFile = folder.appendingPathComponent("steps.json")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: steps).write(to: stepsFile)
        let script = packageRoot.appendingPathComponent("Tests/Fixtures/mcp/mcp_session.py")
        let run = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), [
            "timeout", "300", "python3", script.path,
            "--ukb", builtProductsDirectory.appendingPathComponent("ukb").path, "--team", team, "--steps", stepsFile.path,
        ], environment: [
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)",
            "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
            "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(system.gateway.port)",
            "KB_TEAM": "not-this-team",  // --team wins
        ])
        // A missing `mcp` package fails the test (never a skip): CI installs it.
        guard run.status == 0, let data = run.stdout.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ProcessFailure("the MCP session failed (status \(run.status)); install the client with `pip install mcp` (scripts/setup-system.sh --test) if it is missing. stderr: \(run.stderr.suffix(3000)) stdout: \(run.stdout.suffix(2000))")
        }
        return Transcript(object: object, stderr: run.stderr)
    }

    struct Transcript {
        var object: [String: Any]
        var stderr: String
        var tools: [[String: Any]] { object["tools"] as? [[String: Any]] ?? [] }
        var calls: [[String: Any]] { object["calls"] as? [[String: Any]] ?? [] }
        func result(_ index: Int) -> [String: Any] { calls[index]["result"] as? [String: Any] ?? [:] }
        func text(_ index: Int) -> String { calls[index]["text"] as? String ?? "" }
        func isError(_ index: Int) -> Bool { result(index)["isError"] as? Bool ?? false }
        func structured(_ index: Int) -> [String: Any] { result(index)["structuredContent"] as? [String: Any] ?? [:] }
        /// The names of the entities (or `key` objects' `field`) of call `index`'s structured result.
        func names(_ index: Int, _ key: String = "entities", field: String = "name") -> [String] {
            (structured(index)[key] as? [[String: Any]] ?? []).compactMap { $0[field] as? String }
        }
        func relations(_ index: Int) -> [String] {
            (structured(index)["relations"] as? [[String: Any]] ?? []).map { "\($0["from"] ?? "")-\($0["relationType"] ?? "")->\($0["to"] ?? "")" }
        }
    }

    func entity(_ system: IndexedSystem, _ team: String, _ name: String) async throws -> Kb_Graph_V1_GetEntityResponse? {
        do {
            return try await system.graphClient.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = name })
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
    }

    @Test("lists the eleven tools with their schemas; every tool works on the team, writes are source auto and seen in the graph store; an entity created over MCP is found by meaning; bad calls are tool errors and the server keeps serving; degraded to words without vector-search", .timeLimit(.minutes(6)))
    func memoryServer() async throws {
        let system = try await IndexedSystem()
        do {
            try await system.put("eng", [graphEntity("circuit-breaker", type: "Pattern", observations: ["Stop calling a failing remote service for a while"], source: .manual)])
            try await system.put("other", [graphEntity("gzip", observations: ["A compression library and tool that makes files smaller"])])
            let zstdText = "A fast lossless compression library that makes data files much smaller"
            let steps: [[String: Any]] = [
                // 0–1: create, then again (existing names are left alone and not returned)
                ["tool": "create_entities", "arguments": ["entities": [
                    ["name": "zstd", "entityType": "Library", "observations": [zstdText]],
                    ["name": "lz4", "entityType": "Library", "observations": ["Extremely fast compression algorithm, trading ratio for speed"]],
                    ["name": "libpng", "entityType": "Library", "observations": ["Reads and writes PNG image files"]],
                ]]],
                ["tool": "create_entities", "arguments": ["entities": [
                    ["name": "zstd", "entityType": "Tool", "observations": ["not merged"]],
                    ["name": "circuit-breaker", "entityType": "Pattern", "observations": []],
                ]]],
                // 2–3: a relation, then the same again
                ["tool": "create_relations", "arguments": ["relations": [["from": "libpng", "to": "zstd", "relationType": "uses"]]]],
                ["tool": "create_relations", "arguments": ["relations": [["from": "libpng", "to": "zstd", "relationType": "uses"], ["from": "lz4", "to": "libpng", "relationType": "inspired"]]]],
                // 4: observations (one new, one already there; and to a person's entity)
                ["tool": "add_observations", "arguments": ["observations": [
                    ["entityName": "zstd", "contents": ["Written by Yann Collet", zstdText]],
                    ["entityName": "circuit-breaker", "contents": ["The gateway uses one per provider"]],
                ]]],
                // 5: delete one observation (graph-store DeleteObservations: the entity keeps its relations)
                ["tool": "delete_observations", "arguments": ["deletions": [["entityName": "zstd", "observations": ["Written by Yann Collet", "never there"]]]]],
                // 6–8: reads
                ["tool": "open_nodes", "arguments": ["names": ["zstd", "ghost"]]],
                ["tool": "search_nodes", "arguments": ["query": "png"]],
                ["tool": "read_graph", "arguments": [String: Any]()],
                // 9–10: by meaning: no word of the query is in zstd (waits for the indexer)
                ["tool": "semantic_search", "arguments": ["query": "shrink my archives", "limit": 3], "until": "\"zstd\"", "timeout": 120],
                ["tool": "similar", "arguments": ["name": "zstd", "limit": 2], "until": "\"lz4\"", "timeout": 120],
                // 11–15: bad calls
                ["tool": "create_entities", "arguments": ["entities": [["name": "typeless", "observations": []]]]],
                ["tool": "add_observations", "arguments": ["observations": [["entityName": "ghost", "contents": ["x"]]]]],
                ["tool": "semantic_search", "arguments": ["query": "compression", "limit": "ten"]],
                ["tool": "no_such_tool", "arguments": [String: Any]()],
                ["tool": "create_entities", "arguments": ["entities": [["name": "bad/name", "entityType": "Library", "observations": []]]]],
                // 16–17: deletes
                ["tool": "delete_relations", "arguments": ["relations": [["from": "libpng", "to": "zstd", "relationType": "uses"], ["from": "ghost", "to": "zstd", "relationType": "uses"]]]],
                ["tool": "delete_entities", "arguments": ["entityNames": ["libpng", "ghost"]]],
            ]
            let mcp = try session(system, steps)
            #expect(mcp.calls.count == steps.count)

            // tools/list: the eleven, each with an object schema naming its arguments
            #expect(mcp.object["server"] as? String == MemoryServer.name)
            #expect(mcp.tools.compactMap { $0["name"] as? String } == MemoryTools.names)
            #expect(MemoryTools.names.count == 11)
            let required: [String: [String]] = [
                "create_entities": ["entities"], "create_relations": ["relations"], "add_observations": ["observations"],
                "delete_entities": ["entityNames"], "delete_observations": ["deletions"], "delete_relations": ["relations"],
                "read_graph": [], "search_nodes": ["query"], "open_nodes": ["names"], "semantic_search": ["query"], "similar": ["name"],
            ]
            for tool in mcp.tools {
                let name = tool["name"] as? String ?? "?"
                let schema = tool["inputSchema"] as? [String: Any] ?? [:]
                #expect(schema["type"] as? String == "object", "\(name)")
                #expect(schema["properties"] is [String: Any], "\(name)")
                #expect((schema["required"] as? [String] ?? []) == required[name], "\(name): \(schema)")
            }
            let entitySchema = ((((mcp.tools.first?["inputSchema"] as? [String: Any])?["properties"] as? [String: Any])?["entities"] as? [String: Any])?["items"] as? [String: Any]) ?? [:]
            #expect(Set(entitySchema["required"] as? [String] ?? []) == ["name", "entityType", "observations"])

            // results in the reference's shapes
            #expect(!mcp.isError(0) && mcp.names(0) == ["zstd", "lz4", "libpng"], "\(mcp.text(0))")
            #expect((mcp.structured(0)["entities"] as? [[String: Any]])?.first?["observations"] as? [String] == [zstdText])
            #expect(!mcp.isError(1) && mcp.names(1).isEmpty, "existing entities are not created again: \(mcp.text(1))")
            #expect(mcp.relations(2) == ["libpng-uses->zstd"], "\(mcp.text(2))")
            #expect(mcp.relations(3) == ["lz4-inspired->libpng"], "only the new relation: \(mcp.text(3))")
            #expect(mcp.names(4, "results", field: "entityName") == ["zstd", "circuit-breaker"])
            #expect((mcp.structured(4)["results"] as? [[String: Any]])?.first?["addedObservations"] as? [String] == ["Written by Yann Collet"], "\(mcp.text(4))")
            #expect(mcp.text(5) == "Deleted 1 of 2 observations.", "\(mcp.text(5))")
            #expect(mcp.structured(5)["success"] as? Bool == true)
            #expect(mcp.names(6) == ["zstd"] && Set(mcp.relations(6)) == ["libpng-uses->zstd"], "the entity kept its relation: \(mcp.text(6))")
            #expect((mcp.structured(6)["entities"] as? [[String: Any]])?.first?["observations"] as? [String] == [zstdText], "\(mcp.text(6))")
            #expect(mcp.names(7) == ["libpng"] && Set(mcp.relations(7)) == ["libpng-uses->zstd", "lz4-inspired->libpng"], "\(mcp.text(7))")
            #expect(Set(mcp.names(8)) == ["circuit-breaker", "libpng", "lz4", "zstd"], "the team only: \(mcp.text(8))")
            #expect(mcp.relations(8).count == 2)

            // by meaning, within the bounded wait
            #expect(!mcp.isError(9) && mcp.structured(9)["degraded"] as? Bool == false, "\(mcp.text(9))")
            #expect(mcp.names(9).contains("zstd") && ["zstd", "lz4"].contains(mcp.names(9).first ?? ""), "found by meaning: \(mcp.text(9)) after \(mcp.calls[9]["seconds"] ?? "?") s")
            #expect(!mcp.names(9).contains("gzip"), "another team's entity")
            #expect(!mcp.isError(10) && mcp.names(10).first == "lz4" && !mcp.names(10).contains("zstd"), "\(mcp.text(10))")

            // bad calls: tool errors naming what to change, and the session went on
            #expect(mcp.isError(11) && mcp.text(11).contains("entities[0].entityType is required"), "\(mcp.text(11))")
            #expect(mcp.isError(12) && mcp.text(12).contains("Entity with name ghost not found"), "\(mcp.text(12))")
            #expect(mcp.isError(13) && mcp.text(13).contains("limit must be a whole number"), "\(mcp.text(13))")
            #expect(mcp.isError(14) && mcp.text(14).contains("unknown tool \"no_such_tool\""), "\(mcp.text(14))")
            #expect(mcp.isError(15) && mcp.text(15).contains("INVALID_ARGUMENT"), "the graph store's rule: \(mcp.text(15))")
            #expect(mcp.text(16) == "Deleted 1 of 2 relations. The rest matched nothing.", "\(mcp.text(16))")
            #expect(mcp.text(17) == "Deleted 1 of 2 entities. Not found: ghost", "\(mcp.text(17))")

            // the graph store: writes in the team, source auto for what MCP created
            let zstd = try #require(try await entity(system, "eng", "zstd"))
            #expect(zstd.entity.source == .auto && zstd.entity.entityType == "Library")
            #expect(zstd.entity.observations.map(\.content) == [zstdText])
            #expect(zstd.inbound.isEmpty && zstd.outbound.isEmpty, "libpng and its relations are gone")
            let breaker = try #require(try await entity(system, "eng", "circuit-breaker"))
            #expect(breaker.entity.source == .manual, "adding observations keeps a person's entity manual")
            #expect(breaker.entity.observations.map(\.content).contains("The gateway uses one per provider"))
            let libpng = try await entity(system, "eng", "libpng")
            #expect(libpng == nil)
            let typeless = try await entity(system, "eng", "typeless"), ghost = try await entity(system, "eng", "ghost")
            #expect(typeless == nil && ghost == nil, "bad calls wrote nothing")
            let elsewhere = try await entity(system, "not-this-team", "zstd")
            #expect(elsewhere == nil, "--team, not KB_TEAM")
            let other = try #require(try await entity(system, "other", "gzip"))
            #expect(other.entity.observations.count == 1, "another team untouched")

            // without vector-search: the graph's word search, said to be degraded
            await system.vectors.stop(signal: SIGKILL)
            let degraded = try session(system, [["tool": "semantic_search", "arguments": ["query": "compression"]]])
            #expect(!degraded.isError(0) && degraded.structured(0)["degraded"] as? Bool == true, "\(degraded.text(0))")
            #expect(degraded.text(0).hasPrefix("degraded: search by meaning is unavailable"), "\(degraded.text(0))")
            #expect(Set(degraded.names(0)) == ["zstd", "lz4"], "\(degraded.text(0))")
        } catch {
            await system.stop()
            throw error
        }
        await system.stop()
    }

    @Test("in process: bad arguments and unknown tools are tool errors before any call; a graph store that does not answer is a tool error that says to start it")
    func toolErrorsInProcess() async throws {
        let graph = RPCClient(configuration: MemoryTools.graphClientConfiguration(.init(host: "127.0.0.1", port: freePort())))
        let tools = MemoryTools(team: "eng", graph: graph, meaning: nil)
        let missing = await tools.call("open_nodes", arguments: [:])
        #expect(missing.isError == true && Self.text(missing) == "invalid arguments for open_nodes: names is required (an array of strings)")
        let wrongType = await tools.call("delete_observations", arguments: ["deletions": [["entityName": 3, "observations": []]]])
        #expect(wrongType.isError == true && Self.text(wrongType).contains("deletions[0].entityName must be a string"), "\(Self.text(wrongType))")
        let unknown = await tools.call("remember", arguments: nil)
        #expect(unknown.isError == true && Self.text(unknown).hasPrefix("unknown tool \"remember\""))
        let down = await tools.call("read_graph", arguments: nil)
        #expect(down.isError == true && Self.text(down).contains("graph-store is not reachable") && Self.text(down).contains("kb up"), "\(Self.text(down))")
        let similar = await tools.call("similar", arguments: ["name": "zstd"])
        #expect(similar.isError == true && Self.text(similar).contains("KB_VECTOR_SEARCH_ADDR"), "\(Self.text(similar))")
        await graph.close()
    }

    @Test("calls that write run one at a time: of eight concurrent create_entities of one name, one creates it and seven find it there", .timeLimit(.minutes(2)))
    func writesAreSerialised() async throws {
        let graphStore = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", dataDirectory: temporaryDirectory("kb-mcp-graph"))
        do {
            try await graphStore.waitUntilReady()
            let graph = RPCClient(configuration: MemoryTools.graphClientConfiguration(.init(host: "127.0.0.1", port: graphStore.port)))
            let tools = MemoryTools(team: "eng", graph: graph, meaning: nil)
            let results = await withTaskGroup(of: CallTool.Result.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        await tools.call("create_entities", arguments: ["entities": [["name": "zstd", "entityType": "Library", "observations": [.string("seen by call \(index)")]]]])
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.isError == false }, "\(results.map(Self.text))")
            let created = results.filter { ($0.structuredContent?.objectValue?["entities"]?.arrayValue?.count ?? 0) == 1 }
            #expect(created.count == 1, "\(results.map(Self.text))")
            let stored = try await graph.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = "zstd" })
            #expect(stored.entity.observations.count == 1, "no second create merged into the first: \(stored.entity.observations.map(\.content))")
            await graph.close()
        } catch {
            await graphStore.stop()
            throw error
        }
        await graphStore.stop()
    }

    static func text(_ result: CallTool.Result) -> String {
        result.content.compactMap { content -> String? in
            if case .text(let text, _, _) = content { return text }
            return nil
        }.joined()
    }
}
