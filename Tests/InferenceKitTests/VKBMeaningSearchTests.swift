import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// VKB's search by meaning and "similar knowledge", over graph-store, vector-search, the
/// gateway's indexer and vkb as processes; writes through VKB's API and through `ukb` found by
/// meaning within a bounded time (and through MCP); the page in headless Chromium.
@Suite("VKB search by meaning, over real processes", .serialized)
struct VKBMeaningSearchTests {
    @Test("hybrid search in the team (and across teams), writes through VKB, ukb and MCP found by meaning within 60 s, similar knowledge, the page's search box and details panel, degraded when vector-search is down", .timeLimit(.minutes(6)))
    func vkbSearchesByMeaning() async throws {
        let system = try await IndexedSystem()
        let vkb = try ServiceProcess(executable: "vkb", envPrefix: "KB_VKB", environment: [
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)",
            "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
            "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(system.gateway.port)",
        ], hasRPC: false)
        let base = "http://127.0.0.1:\(vkb.adminPort)"
        func get(_ path: String) async throws -> HTTPResult {
            try #require(await httpGet(base + path, timeout: 20), "GET \(path): no answer; vkb log \(vkb.log.suffix(2000))")
        }
        func names(_ answer: HTTPResult) -> [String] {
            (answer.json["results"] as? [[String: Any]] ?? []).compactMap { ($0["entity"] as? [String: Any])?["name"] as? String }
        }
        func query(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }
        do {
            try await vkb.waitUntilReady()
            try await system.put("eng", [
                graphEntity("zstd", observations: ["A fast lossless compression library that makes data files much smaller"]),
                graphEntity("libpng", observations: ["Reads and writes PNG image files"]),
                graphEntity("circuit-breaker", type: "Pattern", observations: ["Stop calling a failing remote service for a while and fail fast instead"]),
                graphEntity("retry-with-backoff", type: "Pattern", observations: ["Call a failing remote service again after waiting longer each time"]),
            ])
            try await system.put("other", [graphEntity("gzip", observations: ["A compression library and tool that makes files smaller"])])
            try await system.waitUntilIndexed("five entities") { try await system.pointCount() == 5 }

            let archives = try await get("/api/search?team=eng&q=\(query("shrink my archives"))")
            #expect(archives.status == 200 && archives.json["degraded"] as? Bool == false && archives.json["mode"] as? String == "hybrid", "\(archives.body)")
            #expect(names(archives).first == "zstd", "no word in common, found by meaning: \(names(archives))")
            #expect(!names(archives).contains("gzip"), "another team's entity")
            let everyTeam = try await get("/api/search?q=\(query("shrink my archives"))&mode=semantic")
            #expect(Set(names(everyTeam).prefix(2)) == ["zstd", "gzip"], "no team named: every team's, \(names(everyTeam))")
            let words = try await get("/api/search?team=eng&q=\(query("shrink my archives"))&mode=keyword")
            #expect(words.json["degraded"] as? Bool == false && names(words).isEmpty, "the graph's word search: \(words.body)")

            let similar = try await get("/api/similar?team=eng&name=circuit-breaker")
            #expect(similar.status == 200 && names(similar).first == "retry-with-backoff" && !names(similar).contains("circuit-breaker"), "\(similar.body)")
            #expect(try await get("/api/similar?team=eng&name=nothing-here").status == 404)

            // Writes through VKB's API, ukb and MCP, each found by meaning within 60 s.
            let written = ContinuousClock.now
            let created = await httpRequest("POST", base + "/api/entities", body: try JSONSerialization.data(withJSONObject: [
                "team": "eng", "name": "bloom-filter", "entityType": "Pattern",
                "observations": ["A probabilistic set that answers maybe present or definitely absent using very little memory"],
            ]), headers: ["Content-Type": "application/json", "Origin": base])
            #expect(created?.status == 201, "\(created?.body ?? "no answer")")
            let ukb = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), [
                "add-entity", "--team", "eng", "--name", "on-call-rotation", "--type", "Process",
                "--observation", "Who gets woken up at night when production breaks",
            ], environment: ["KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)"])
            #expect(ukb.status == 0, "\(ukb.stderr)")
            // …and through MCP, as a coding agent writes (`ukb mcp`, the mcp package as the client).
            let agent = try UKBMCPTests().session(system, [[
                "tool": "create_entities",
                "arguments": ["entities": [["name": "feature-flags", "entityType": "Pattern",
                                            "observations": ["Ship unfinished code switched off and turn it on for some users at run time"]]]],
            ]])
            #expect(agent.calls.count == 1 && (agent.result(0)["isError"] as? Bool ?? false) == false, "\(agent.object)")
            for (text, expected) in [("compact membership test with false positives", "bloom-filter"), ("pager schedule for incidents", "on-call-rotation"), ("gradual rollout toggles", "feature-flags")] {
                var found: [String] = []
                while ContinuousClock.now - written < .seconds(60) {
                    found = names(try await get("/api/search?team=eng&q=\(query(text))&mode=semantic&limit=3"))
                    if found.first == expected { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(found.first == expected, "\(expected), written, found by meaning ('\(text)'): \(found)")
            }
            print("VKB, ukb and MCP writes found by meaning \(ContinuousClock.now - written) after the first write")

            // The page: the search box searches by meaning; the details list similar knowledge.
            let script = packageRoot.appendingPathComponent("Tests/VKBTests/browser/meaning_test.py")
            let page = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, "--url", base, "--query", "shrink my archives", "--expect", "zstd", "--similar-of", "eng:circuit-breaker", "--similar", "retry-with-backoff"])
            #expect(page.status == 0 && page.stdout.contains("PASS"), "browser checks failed:\n\(page.stdout)\n\(page.stderr.suffix(3000))")

            // vector-search down: the same search answers by words and says it is degraded.
            await system.vectors.stop(signal: SIGKILL)
            let degraded = try await get("/api/search?team=eng&q=compression")
            #expect(degraded.json["degraded"] as? Bool == true && names(degraded) == ["zstd"], "\(degraded.body)")
            #expect(try await get("/api/similar?team=eng&name=zstd").status == 503)
            let health = await httpGet(base + "/health", timeout: 5)?.json ?? [:]
            let component = (health["components"] as? [String: Any])?["search-by-meaning"] as? [String: Any]
            #expect(component?["status"] as? String == "degraded", "\(health)")
        } catch {
            await vkb.stop()
            await system.stop()
            throw error
        }
        await vkb.stop()
        await system.stop()
    }
}
