import Foundation
import KBTestSupport
import Testing

@Suite("vkb's HTTP API against real graph-store and vkb processes", .serialized)
struct VKBAPITests {
    @Test("reads: teams, stats, entities with filters and paging, one entity, relations, search, graph, export")
    func reads() async throws {
        let system = try await VKBUnderTest.start()
        try await system.seed()
        try await system.seed(VKBFixtures.otherTeam)

        let teams = try await system.get("/api/teams").json["teams"] as? [[String: Any]] ?? []
        #expect(teams.map { $0["team"] as? String } == ["coding", "ops"])
        #expect(teams.first?["entities"] as? Int == 5)

        let stats = try await system.get("/api/stats").json
        #expect(stats["entities"] as? Int == 7 && stats["relations"] as? Int == 5 && stats["teams"] as? Int == 2)
        #expect((stats["entitiesByType"] as? [String: Int])?["Pattern"] == 2)
        let codingStats = try await system.get("/api/stats?team=coding").json
        #expect(codingStats["entities"] as? Int == 5)

        func names(_ path: String) async throws -> [String] {
            let result = try await system.get(path)
            #expect(result.status == 200, "\(path): \(result.body)")
            return (result.json["entities"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        }
        #expect(try await names("/api/entities?team=coding&type=Pattern") == ["CircuitBreaker", "RetryPolicy"])
        #expect(try await names("/api/entities?team=coding&source=auto") == ["Payments Timeout"])
        #expect(try await names("/api/entities?q=backoff") == ["RetryPolicy"])
        #expect(try await names("/api/entities?team=ops") == ["Pager", "Runbook"])
        #expect(try await names("/api/entities?team=coding,ops&sort=significance").prefix(2) == ["CircuitBreaker", "RetryPolicy"])
        // Paging: two at a time covers all five exactly once.
        var seen: [String] = []
        var cursor = ""
        repeat {
            let page = try await system.get("/api/entities?team=coding&limit=2" + (cursor.isEmpty ? "" : "&cursor=\(cursor)")).json
            seen += (page["entities"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            cursor = page["nextCursor"] as? String ?? ""
        } while !cursor.isEmpty
        #expect(seen == ["CircuitBreaker", "Hostile", "Payments Timeout", "RetryPolicy", "Use Deadlines"])

        let one = try await system.get("/api/entities/coding/Payments%20Timeout")
        #expect(one.status == 200)
        let entity = one.json["entity"] as? [String: Any] ?? [:]
        #expect(entity["source"] as? String == "auto" && entity["significance"] as? Int == 6 && entity["id"] as? String == "coding:Payments Timeout")
        #expect(((entity["observations"] as? [[String: Any]])?.first?["content"] as? String)?.contains("deadline") == true)
        #expect((one.json["outbound"] as? [[String: Any]])?.map { $0["to"] as? String } == ["RetryPolicy"])
        #expect((one.json["inbound"] as? [[String: Any]])?.map { $0["from"] as? String } == ["Use Deadlines"])
        #expect(try await system.get("/api/entities/coding/Nope").status == 404)
        #expect(try await system.get("/api/entities/ops/RetryPolicy").status == 404, "teams do not see each other's entities")

        let relations = try await system.get("/api/relations?team=coding&entity=RetryPolicy&direction=inbound").json["relations"] as? [[String: Any]] ?? []
        #expect(Set(relations.compactMap { $0["from"] as? String }) == ["Payments Timeout", "Hostile"])

        // Search by meaning needs vector-search and the gateway, which this test does not start:
        // the default (hybrid) answers with the word search and says it is degraded.
        let searched = try await system.get("/api/search?q=deadline").json
        let search = searched["results"] as? [[String: Any]] ?? []
        #expect(Set(search.compactMap { ($0["entity"] as? [String: Any])?["name"] as? String }) == ["Payments Timeout", "Use Deadlines"])
        #expect(searched["mode"] as? String == "hybrid" && searched["degraded"] as? Bool == true)
        #expect((searched["degradedReason"] as? String)?.contains("search by meaning is unavailable") == true, "\(searched)")
        let words = try await system.get("/api/search?q=deadline&mode=keyword").json
        #expect(words["mode"] as? String == "keyword" && words["degraded"] as? Bool == false && (words["results"] as? [Any])?.count == 2)
        let similar = try await system.get("/api/similar?team=coding&name=RetryPolicy")
        #expect(similar.status == 503 && similar.json["error"].flatMap { ($0 as? [String: Any])?["code"] as? String } == "search_unavailable", "\(similar.body)")
        #expect(try await system.get("/api/search?q=x&mode=fuzzy").errorField == "mode")
        #expect(try await system.get("/api/similar?team=coding").errorField == "name")

        // The whole graph, a capped one, a filtered one and a neighbourhood.
        let graph = try await system.get("/api/graph").json
        #expect((graph["nodes"] as? [Any])?.count == 7 && (graph["links"] as? [Any])?.count == 5 && graph["capped"] as? Bool == false)
        let capped = try await system.get("/api/graph?team=coding&limit=2").json
        let cappedNames = (capped["nodes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(cappedNames == ["CircuitBreaker", "RetryPolicy"], "the most significant first")
        #expect(capped["capped"] as? Bool == true && capped["matching"] as? Int == 5)
        #expect((capped["links"] as? [[String: Any]])?.count == 1, "only relations among the drawn nodes")
        let noBugs = try await system.get("/api/graph?team=coding&type=Pattern,Decision").json
        #expect(Set((noBugs["nodes"] as? [[String: Any]] ?? []).compactMap { $0["entityType"] as? String }) == ["Pattern", "Decision"])
        let around = try await system.get("/api/graph?focus=coding:Use%20Deadlines&depth=1").json
        #expect(Set((around["nodes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }) == ["Use Deadlines", "Payments Timeout"])
        let deeper = try await system.get("/api/graph?focus=coding:Use%20Deadlines&depth=2").json
        #expect(Set((deeper["nodes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }) == ["Use Deadlines", "Payments Timeout", "RetryPolicy"])
        #expect(try await system.get("/api/graph?focus=coding:Missing").status == 404)

        let export = try await system.get("/api/export?team=ops")
        #expect(export.headers["content-disposition"]?.contains("shared-memory-ops.json") == true)
        #expect((export.json["entities"] as? [Any])?.count == 2 && (export.json["relations"] as? [Any])?.count == 1)
        await system.stop()
    }

    @Test("writes: create, update, delete entities and relations; import with a dry run; every bad input is a 400 naming the field and changes nothing")
    func writesAndValidation() async throws {
        let system = try await VKBUnderTest.start()
        try await system.seed()

        let created = try await system.request("POST", "/api/entities", json: ["team": "coding", "name": "Bulkhead", "entityType": "Pattern", "observations": ["Isolate pools"], "significance": 7])
        #expect(created.status == 201, "\(created.body)")
        #expect(try await system.request("POST", "/api/entities", json: ["team": "coding", "name": "Bulkhead", "entityType": "Pattern"]).status == 409)
        let updated = try await system.request("PATCH", "/api/entities/coding/Bulkhead", json: ["observations": ["Limit concurrency per dependency"], "confidence": 0.8])
        #expect(updated.status == 200, "\(updated.body)")
        let bulkhead = updated.json["entity"] as? [String: Any] ?? [:]
        #expect((bulkhead["observations"] as? [Any])?.count == 2 && bulkhead["confidence"] as? Double == 0.8 && bulkhead["entityType"] as? String == "Pattern")
        #expect(try await system.request("PATCH", "/api/entities/coding/Nobody", json: ["confidence": 0.5]).status == 404)

        let relation = try await system.request("POST", "/api/relations", json: ["team": "coding", "from": "Bulkhead", "to": "CircuitBreaker", "relationType": "complements"])
        #expect(relation.status == 201, "\(relation.body)")
        #expect(try await system.request("POST", "/api/relations", json: ["team": "coding", "from": "Bulkhead", "to": "Ghost", "relationType": "x"]).status == 404)
        #expect(try await system.request("DELETE", "/api/relations", json: ["team": "coding", "from": "Bulkhead", "to": "CircuitBreaker", "relationType": "complements"]).status == 200)
        #expect(try await system.request("DELETE", "/api/relations?team=coding&from=Bulkhead&to=CircuitBreaker&relationType=complements").status == 404)
        let deleted = try await system.request("DELETE", "/api/entities/coding/Payments%20Timeout")
        #expect(deleted.status == 200 && deleted.json["deletedRelations"] as? Int == 2, "\(deleted.body)")
        #expect(try await system.request("DELETE", "/api/entities/coding/Payments%20Timeout").status == 404)

        let before = try await system.get("/api/stats").json
        let bad: [(String, String, Any?, Data?, String)] = [
            ("POST", "/api/entities", ["team": "coding", "name": "<img src=x onerror=alert(1)>", "entityType": "X"], nil, "name"),
            ("POST", "/api/entities", ["team": "coding", "name": "Ok", "entityType": ""], nil, "entityType"),
            ("POST", "/api/entities", ["team": "co:ding", "name": "Ok", "entityType": "X"], nil, "team"),
            ("POST", "/api/entities", ["team": "coding", "name": "Ok", "entityType": "X", "significance": 11], nil, "significance"),
            ("POST", "/api/entities", ["team": "coding", "name": "Ok", "entityType": "X", "confidence": "high"], nil, "confidence"),
            ("POST", "/api/entities", ["team": "coding", "name": "Ok", "entityType": "X", "observations": [17]], nil, "observations[0]"),
            ("POST", "/api/entities", nil, Data("{not json".utf8), "body"),
            ("POST", "/api/entities", nil, Data("[1,2]".utf8), "body"),
            ("POST", "/api/relations", ["team": "coding", "from": "RetryPolicy", "to": "CircuitBreaker"], nil, "relationType"),
            ("POST", "/api/import", ["entities": [["name": "Fine", "entityType": "X"], ["name": "", "entityType": "X"]]], nil, "entities[1].name"),
            ("POST", "/api/import", ["entities": [["name": "Fine", "entityType": "X"]], "relations": [["from": "Fine", "to": "Missing", "relationType": "r"]]], nil, "relations[0].to"),
            ("GET", "/api/entities?limit=abc", nil, nil, "limit"),
            ("GET", "/api/entities?team=a%20b", nil, nil, "team"),
            ("GET", "/api/entities?sort=sideways", nil, nil, "sort"),
            ("GET", "/api/search?q=", nil, nil, "q"),
            ("GET", "/api/graph?focus=nocolon", nil, nil, "focus"),
            ("GET", "/api/graph?depth=9&focus=coding:RetryPolicy", nil, nil, "depth"),
            ("GET", "/api/relations?direction=up", nil, nil, "direction"),
        ]
        for (method, path, json, body, field) in bad {
            let result = try await system.request(method, path, json: json, body: body, headers: body == nil ? [:] : ["Content-Type": "application/json"])
            #expect(result.status == 400, "\(method) \(path): \(result.status) \(result.body)")
            #expect(result.errorField == field, "\(method) \(path): \(result.body)")
        }
        let after = try await system.get("/api/stats").json
        #expect(after["entities"] as? Int == before["entities"] as? Int && after["relations"] as? Int == before["relations"] as? Int, "bad requests changed nothing")

        // A dry run reports without writing; the real import then writes.
        let document: [String: Any] = ["metadata": ["team": "imports"], "entities": [["name": "A", "entityType": "T"], ["name": "B", "entityType": "T"]], "relations": [["from": "A", "to": "B", "relationType": "r"]]]
        let preview = try await system.request("POST", "/api/import?dryRun=true", json: document)
        #expect(preview.status == 200 && preview.json["dryRun"] as? Bool == true && preview.json["newEntities"] as? Int == 2, "\(preview.body)")
        #expect((try await system.get("/api/teams").json["teams"] as? [[String: Any]] ?? []).allSatisfy { $0["team"] as? String != "imports" }, "a dry run writes nothing")
        let imported = try await system.request("POST", "/api/import", json: document)
        #expect(imported.json["entitiesCreated"] as? Int == 2 && imported.json["relationsCreated"] as? Int == 1, "\(imported.body)")
        let again = try await system.request("POST", "/api/import?dryRun=1", json: document)
        #expect(again.json["existingEntities"] as? Int == 2)
        #expect(try await system.get("/api/nothing-here").status == 404)
        await system.stop()
    }

    @Test("a bad name only the graph store checks comes back with the field and reason of its RPC status, not parsed from text")
    func graphStoreErrorsKeepTheirField() async throws {
        let system = try await VKBUnderTest.start()
        try await system.seed()
        // VKB passes the focus and the entity filter on unchecked: the graph store's
        // INVALID_ARGUMENT names the field in its status, and VKB's body carries it.
        let focus = try await system.get("/api/graph?focus=coding:bad%2Fname")
        #expect(focus.status == 400, "\(focus.body)")
        #expect(focus.errorField == "focus", "\(focus.body)")
        #expect(focus.errorReason == "NAME_INVALID", "\(focus.body)")
        #expect(focus.errorMessage.hasPrefix("may hold only letters"), "the field is not repeated in the message: \(focus.body)")
        #expect((focus.json["error"] as? [String: Any])?["code"] as? String == "invalid_argument")
        let entity = try await system.get("/api/relations?team=coding&entity=a%2Fb")
        #expect(entity.status == 400 && entity.errorField == "entity" && entity.errorReason == "NAME_INVALID", "\(entity.body)")
        let long = try await system.get("/api/relations?team=coding&entity=" + String(repeating: "x", count: 201))
        #expect(long.status == 400 && long.errorField == "entity" && long.errorReason == "TOO_LONG", "\(long.body)")
        // A relation to a missing entity: the graph store's FAILED_PRECONDITION names
        // relations[0].to with NOT_FOUND; VKB's flat body calls the end `to`.
        let ghost = try await system.request("POST", "/api/relations", json: ["team": "coding", "from": "RetryPolicy", "to": "Ghost", "relationType": "x"])
        #expect(ghost.status == 404 && ghost.errorField == "to" && ghost.errorReason == "NOT_FOUND", "\(ghost.body)")
        #expect(ghost.errorMessage == "entity 'Ghost' does not exist in team 'coding'", "\(ghost.body)")
        // Rules VKB checks itself carry the same reasons.
        let name = try await system.request("POST", "/api/entities", json: ["team": "coding", "name": "<b>", "entityType": "X"])
        #expect(name.status == 400 && name.errorField == "name" && name.errorReason == "NAME_INVALID", "\(name.body)")
        let missing = try await system.request("POST", "/api/import", json: ["entities": [["name": "Fine", "entityType": "X"]], "relations": [["from": "Fine", "to": "Missing", "relationType": "r"]]])
        #expect(missing.status == 400 && missing.errorField == "relations[0].to" && missing.errorReason == "NOT_FOUND", "\(missing.body)")
        await system.stop()
    }

    @Test("security: loopback bind, CSP and no-sniff headers, token for writes and reads, same-origin writes, body size limit, write rate limit with 429")
    func security() async throws {
        let system = try await VKBUnderTest.start(environment: ["KB_AUTH_TOKEN": "s3cret", "KB_VKB_WRITE_RATE_LIMIT": "5", "KB_VKB_MAX_BODY_BYTES": "4096"])
        // Bound to 127.0.0.1 only (no KB_VKB_HOST given).
        let hexPort = String(format: "%04X", system.vkb.adminPort)
        let listening = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8).split(separator: "\n").filter { $0.contains(":\(hexPort) ") && $0.contains(" 0A ") }
        #expect(!listening.isEmpty && listening.allSatisfy { $0.contains("0100007F:\(hexPort)") }, "\(listening)")

        for path in ["/", "/api/stats", "/api/nothing"] {
            let result = try await system.get(path)
            #expect(result.headers["content-security-policy"]?.contains("script-src 'self'") == true, "\(path)")
            #expect(result.headers["x-content-type-options"] == "nosniff", "\(path)")
        }
        #expect(try await system.get("/api/teams").status == 200, "reads with the token")
        #expect(try await system.request("GET", "/api/teams", authorized: false).status == 401, "reads need the token once it is set")
        let entity: [String: Any] = ["team": "sec", "name": "One", "entityType": "T"]
        let denied = try await system.request("POST", "/api/entities", json: entity, authorized: false)
        #expect(denied.status == 401)
        let wrong = try await system.request("POST", "/api/entities", json: entity, headers: ["Authorization": "Bearer nope"], authorized: false)
        #expect(wrong.status == 401)
        #expect(try await system.request("POST", "/api/entities", json: entity).status == 201)
        let crossSite = try await system.request("POST", "/api/entities", json: ["team": "sec", "name": "Two", "entityType": "T"], headers: ["Origin": "http://evil.example"])
        #expect(crossSite.status == 403, "\(crossSite.body)")
        let plain = try await system.request("POST", "/api/entities", body: Data(#"{"team":"sec","name":"Plain","entityType":"T"}"#.utf8), headers: ["Content-Type": "text/plain"])
        #expect(plain.status == 415, "a text/plain body (what a cross-site form can send) is refused: \(plain.body)")
        let nullOrigin = try await system.request("POST", "/api/entities", json: ["team": "sec", "name": "Null", "entityType": "T"], headers: ["Origin": "null"])
        #expect(nullOrigin.status == 403)
        let big = try await system.request("POST", "/api/import", body: Data(repeating: UInt8(ascii: " "), count: 10_000), headers: ["Content-Type": "application/json"])
        #expect(big.status == 413 && big.errorField == "body")

        // 5 writes a minute: one is spent (refused writes — 401, 403, 413 — do not count).
        var statuses: [Int] = []
        for index in 0..<4 {
            statuses.append(try await system.request("POST", "/api/entities", json: ["team": "sec", "name": "R\(index)", "entityType": "T"]).status)
        }
        #expect(statuses == [201, 201, 201, 201])
        let limited = try await system.request("POST", "/api/entities", json: ["team": "sec", "name": "Late", "entityType": "T"])
        #expect(limited.status == 429 && Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1, "\(limited.status) \(limited.headers)")
        #expect(try await system.get("/api/stats").status == 200, "reads are not limited by default")
        #expect((try await system.get("/api/entities?team=sec").json["entities"] as? [Any])?.count ?? 0 <= 5)
        await system.stop()
    }

    @Test("graph store unavailable: 503 with a clear message, /health degraded, the page still served; recovers when the store starts")
    func graphStoreUnavailable() async throws {
        let port = freePort()
        let system = try await VKBUnderTest.start(withStore: false, graphStoreAddress: "127.0.0.1:\(port)")
        let stats = try await system.get("/api/stats")
        #expect(stats.status == 503)
        #expect(stats.errorMessage.contains("graph store at 127.0.0.1:\(port) is unavailable"), "\(stats.body)")
        let health = try await system.get("/health")
        #expect(health.status == 200 && health.json["status"] as? String == "degraded", "\(health.body)")
        #expect(((health.json["components"] as? [String: Any])?["graph-store"] as? [String: Any])?["status"] as? String == "degraded")
        #expect(try await system.get("/").status == 200)

        let store = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: ["KB_GRAPH_STORE_PORT": "\(port)"])
        _ = store.adminPort
        try await store.waitUntilReady()
        var recovered = false
        for _ in 0..<100 where !recovered {
            recovered = try await system.get("/api/stats").status == 200
            if !recovered { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(recovered)
        let components = try await system.get("/health").json["components"] as? [String: [String: Any]] ?? [:]
        #expect(components["graph-store"]?["status"] as? String == "healthy")
        // No vector-search or gateway in this test: search by meaning is the one degraded part.
        #expect(components["search-by-meaning"]?["status"] as? String == "degraded")
        #expect((components["search-by-meaning"]?["error"] as? String)?.contains("search falls back to words") == true, "\(components)")
        await store.stop()
        await system.stop()
    }
}
