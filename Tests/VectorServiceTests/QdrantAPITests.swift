import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// A vector-search process with its Qdrant-compatible port, and helpers to call it.
struct QdrantUnderTest {
    let vectors: VectorServiceUnderTest
    let port: Int

    static func start(dataDirectory: URL? = nil, environment: [String: String] = [:]) async throws -> QdrantUnderTest {
        let vectors = try await VectorServiceUnderTest.start(dataDirectory: dataDirectory, environment: environment)
        let port = vectors.service.httpPort("qdrant")
        guard port > 0 else { throw ProcessFailure("no 'qdrant http listening' line: \(vectors.service.log)") }
        return QdrantUnderTest(vectors: vectors, port: port)
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Sends `method path` with a JSON body; the status and the parsed body.
    func call(_ method: String, _ path: String, _ body: String? = nil, headers: [String: String] = [:]) async throws -> (status: Int, json: [String: Any], body: String) {
        var headers = headers
        if body != nil { headers["Content-Type"] = "application/json" }
        guard let result = await httpRequest(method, base + path, body: body.map { Data($0.utf8) }, headers: headers, timeout: 60) else {
            throw ProcessFailure("\(method) \(path): no answer")
        }
        return (result.status, result.json, result.body)
    }

    /// The `result` of a 200 answer; fails the test otherwise.
    func result(_ method: String, _ path: String, _ body: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Any? {
        let answer = try await call(method, path, body)
        #expect(answer.status == 200, "\(method) \(path): \(answer.body)", sourceLocation: sourceLocation)
        #expect(answer.json["status"] as? String == "ok", "\(answer.body)", sourceLocation: sourceLocation)
        return answer.json["result"]
    }
}

/// A small, deterministic 4-dimensional data set: ids 1…5 as integers and one UUID.
enum QdrantFixture {
    static let uuid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
    static let points = """
    {"points": [
      {"id": 1, "vector": [0.05, 0.61, 0.76, 0.74], "payload": {"city": "Berlin", "n": 1, "tags": ["a", "b"]}},
      {"id": 2, "vector": [0.19, 0.81, 0.75, 0.11], "payload": {"city": "London", "n": 2, "meta": {"x": [1, 2]}}},
      {"id": 3, "vector": [0.36, 0.55, 0.47, 0.94], "payload": {"city": "Moscow", "n": 3}},
      {"id": 4, "vector": [0.18, 0.01, 0.85, 0.80], "payload": {"city": "New York", "n": 4, "flag": true}},
      {"id": 5, "vector": [0.24, 0.18, 0.22, 0.44], "payload": {"city": "Beijing", "n": 5.5}},
      {"id": "\(uuid)", "vector": [0.35, 0.08, 0.11, 0.44], "payload": {"city": "Mumbai", "n": 6}}
    ]}
    """
}

@Suite("Qdrant-compatible REST API", .serialized)
struct QdrantAPITests {
    @Test("writes through the Qdrant port are visible to the RPC and the other way round; ids, payloads, filters, scroll, count")
    func qdrantAndRPCShareOneStore() async throws {
        let server = try await QdrantUnderTest.start()
        defer { Task { await server.vectors.service.stop() } }
        _ = try await server.result("PUT", "/collections/cities", #"{"vectors": {"size": 4, "distance": "Cosine"}, "hnsw_config": {"m": 8, "ef_construct": 64}}"#)
        let upsert = try await server.result("PUT", "/collections/cities/points?wait=true", QdrantFixture.points) as? [String: Any]
        #expect(upsert?["status"] as? String == "completed")

        // The RPC sees integer ids as their decimal text and the UUID in canonical form.
        let client = server.vectors.client()
        let got = try await client.call(VectorSearchMethods.getPoints, .with {
            $0.collection = "cities"; $0.ids = ["1", "2", QdrantFixture.uuid]; $0.withPayload = true
        })
        #expect(got.points.map(\.id) == ["1", "2", QdrantFixture.uuid])
        #expect(got.points[0].payload["city"]?.keyword == "Berlin")
        #expect(got.points[0].payload["tags"]?.keywords.values == ["a", "b"])
        #expect(got.points[1].payload["meta"]?.json == #"{"x":[1,2]}"#)

        // A point written over RPC is read back through Qdrant's API with an integer id.
        _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "cities"
            $0.points = [.with { $0.id = "7"; $0.vector = [0.9, 0.1, 0.1, 0.1]; $0.payload["city"] = .with { $0.keyword = "Paris" } }]
        })
        let retrieved = try await server.result("POST", "/collections/cities/points", #"{"ids": [7, "\#(QdrantFixture.uuid)"], "with_vector": true}"#) as? [[String: Any]]
        #expect(retrieved?.count == 2)
        #expect(retrieved?.first?["id"] as? Int == 7)
        #expect((retrieved?.first?["payload"] as? [String: Any])?["city"] as? String == "Paris")
        #expect((retrieved?.last?["id"] as? String) == QdrantFixture.uuid)
        #expect((retrieved?.first?["vector"] as? [Double])?.count == 4)

        // Search with a filter: the same ids and scores as the RPC's search.
        let query: [Float] = [0.2, 0.1, 0.9, 0.7]
        let search = try await server.result("POST", "/collections/cities/points/search", #"{"vector": [0.2, 0.1, 0.9, 0.7], "limit": 3, "with_payload": true, "filter": {"must_not": [{"key": "city", "match": {"value": "London"}}], "should": [{"key": "n", "range": {"gte": 2}}, {"has_id": [1]}]}}"#) as? [[String: Any]]
        let rpc = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "cities"; $0.vector = query; $0.limit = 3
            $0.filter = .with {
                $0.mustNot = [.with { $0.match = .with { $0.key = "city"; $0.value = .with { $0.keyword = "London" } } }]
                $0.should = [.with { $0.range = .with { $0.key = "n"; $0.lower = .with { $0.value = 2; $0.inclusive = true } } }, .with { $0.hasID_p = .with { $0.values = ["1"] } }]
            }
        })
        #expect(search?.map { "\($0["id"]!)" } == rpc.results.map(\.point.id))
        for (hit, expected) in zip(search ?? [], rpc.results) {
            #expect(abs((hit["score"] as? Double ?? 0) - Double(expected.score)) < 1e-5)
        }
        #expect(search?.contains { ($0["payload"] as? [String: Any])?["city"] as? String == "London" } == false)

        // Scroll pages through every point in id order (integers first, then the UUID).
        var seen: [String] = []
        var offset = "null"
        for _ in 0..<10 {
            let page = try await server.result("POST", "/collections/cities/points/scroll", #"{"limit": 3, "offset": \#(offset)}"#) as? [String: Any]
            seen += (page?["points"] as? [[String: Any]] ?? []).map { "\($0["id"]!)" }
            guard let next = page?["next_page_offset"], !(next is NSNull) else { break }
            offset = next is String ? "\"\(next)\"" : "\(next)"
        }
        #expect(seen == ["1", "2", "3", "4", "5", "7", QdrantFixture.uuid])

        // Count with a filter; set and overwrite payloads; delete by filter, seen over RPC.
        let count = try await server.result("POST", "/collections/cities/points/count", #"{"filter": {"must": [{"key": "city", "match": {"any": ["Berlin", "Moscow"]}}]}}"#) as? [String: Any]
        #expect(count?["count"] as? Int == 2)
        // is_empty (missing field), is_null, match except, a nested filter, and a JSON null payload.
        _ = try await server.result("POST", "/collections/cities/points/payload", #"{"payload": {"note": null}, "points": [5]}"#)
        let filters: [(String, Int)] = [
            (#"{"must": [{"is_empty": {"key": "flag"}}]}"#, 6),
            (#"{"must": [{"is_null": {"key": "note"}}]}"#, 1),
            (#"{"must": [{"is_empty": {"key": "note"}}]}"#, 7),
            (#"{"must": [{"key": "city", "match": {"except": ["Berlin", "Moscow"]}}]}"#, 5),
            (#"{"should": [{"must": [{"key": "n", "range": {"lt": 3}}, {"key": "city", "match": {"value": "London"}}]}, {"has_id": ["\#(QdrantFixture.uuid)"]}]}"#, 2),
        ]
        for (filter, expected) in filters {
            let counted = try await server.result("POST", "/collections/cities/points/count", #"{"filter": \#(filter)}"#) as? [String: Any]
            #expect(counted?["count"] as? Int == expected, "\(filter)")
        }
        _ = try await server.result("POST", "/collections/cities/points/payload", #"{"payload": {"visited": true}, "points": [1, 2]}"#)
        _ = try await server.result("PUT", "/collections/cities/points/payload", #"{"payload": {"city": "Rome"}, "points": [3]}"#)
        let changed = try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "cities"; $0.ids = ["1", "3"]; $0.withPayload = true; $0.withVector = true })
        #expect(changed.points[0].payload["visited"]?.boolean == true)
        #expect(changed.points[0].payload["city"]?.keyword == "Berlin")
        #expect(changed.points[1].payload.keys.sorted() == ["city"])
        #expect(changed.points[1].payload["city"]?.keyword == "Rome")
        let deleted = try await server.result("POST", "/collections/cities/points/delete", #"{"filter": {"must": [{"key": "visited", "match": {"value": true}}]}}"#) as? [String: Any]
        #expect(deleted?["status"] as? String == "completed")
        let after = try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "cities" })
        #expect(after.pointCount == 5)

        let info = try await server.result("GET", "/collections/cities") as? [String: Any]
        #expect(info?["points_count"] as? Int == 5)
        #expect(info?["status"] as? String == "green")
        #expect(info?["optimizer_status"] as? String == "ok")
        let params = (info?["config"] as? [String: Any])?["params"] as? [String: Any]
        #expect((params?["vectors"] as? [String: Any])?["distance"] as? String == "Cosine")
        #expect(((info?["config"] as? [String: Any])?["hnsw_config"] as? [String: Any])?["m"] as? Int == 8)
        let exists = try await server.result("GET", "/collections/nowhere/exists") as? [String: Any]
        #expect(exists?["exists"] as? Bool == false)
    }

    @Test("bad input is a 400 naming the field, in Qdrant's error shape, and writes nothing")
    func badInputIsRefusedNamingTheField() async throws {
        let server = try await QdrantUnderTest.start()
        defer { Task { await server.vectors.service.stop() } }
        _ = try await server.result("PUT", "/collections/c", #"{"vectors": {"size": 4, "distance": "Dot"}}"#)
        let cases: [(method: String, path: String, body: String, field: String)] = [
            ("PUT", "/collections/c/points", #"{"points": [{"id": 1, "vector": [1, 2, 3, 4]}"#, "body"),
            ("PUT", "/collections/c/points", #"{"points": [{"id": 1, "vector": [1, 2, 3, 4]}, {"id": 2, "vector": [1, 2, 3]}]}"#, "points[1].vector"),
            ("PUT", "/collections/c/points", #"{"points": [{"id": 1, "vector": [1, 2, 3, 4]}, {"id": "not-a-uuid", "vector": [1, 2, 3, 4]}]}"#, "points[1].id"),
            ("PUT", "/collections/c/points", #"{"points": [{"id": -3, "vector": [1, 2, 3, 4]}]}"#, "points[0].id"),
            ("PUT", "/collections/d", #"{"vectors": {"size": 4, "distance": "Manhattan"}}"#, "vectors.distance"),
            ("POST", "/collections/c/points/search", #"{"vector": [1, 2, 3, 4], "filter": {"must": [{"key": "city", "match": {"value": {"nested": 1}}}]}}"#, "filter.must[0].match.value"),
            ("POST", "/collections/c/points/search", #"{"vector": [1, 2, 3, 4], "filter": {"must": [{"key": "city", "geo_radius": {"center": {"lon": 0, "lat": 0}, "radius": 1}}]}}"#, "filter.must[0].geo_radius"),
            ("POST", "/collections/c/points/delete", #"{"filter": {"must": [{"unknown": 1}]}}"#, "filter.must[0]"),
        ]
        for item in cases {
            let answer = try await server.call(item.method, item.path, item.body)
            #expect(answer.status == 400, "\(item.body): \(answer.body)")
            let status = answer.json["status"] as? [String: Any]
            #expect(status?["field"] as? String == item.field, "\(item.body): \(answer.body)")
            #expect((status?["error"] as? String)?.hasPrefix(item.field) == true, "\(answer.body)")
        }
        let count = try await server.result("POST", "/collections/c/points/count", "{}") as? [String: Any]
        #expect(count?["count"] as? Int == 0)
        #expect(try await server.call("GET", "/collections/d").status == 404)
        let missing = try await server.call("POST", "/collections/nowhere/points/search", #"{"vector": [1]}"#)
        #expect(missing.status == 404)
        #expect((missing.json["status"] as? [String: Any])?["error"] as? String == "Not found: Collection `nowhere` doesn't exist!")
        #expect(try await server.call("PUT", "/collections/c", #"{"vectors": {"size": 4, "distance": "Dot"}}"#).status == 409)
    }

    @Test("the Qdrant port keeps the system's rules: token (api-key or Bearer), allowed Host, same-origin writes")
    func securityRulesHold() async throws {
        let server = try await QdrantUnderTest.start(environment: ["KB_AUTH_TOKEN": "s3cret"])
        defer { Task { await server.vectors.service.stop() } }
        #expect(try await server.call("GET", "/collections").status == 401)
        #expect(try await server.call("GET", "/collections", headers: ["api-key": "wrong"]).status == 401)
        #expect(try await server.call("GET", "/collections", headers: ["api-key": "s3cret"]).status == 200)
        #expect(try await server.call("GET", "/collections", headers: ["Authorization": "Bearer s3cret"]).status == 200)
        #expect(try await server.call("GET", "/healthz").status == 200)
        let root = try await server.call("GET", "/")
        #expect(root.json["version"] as? String == "1.20.0")
        let rebinding = try RawConnection.request(port: server.port, "GET", "/collections", headers: [("Host", "evil.example:\(server.port)"), ("api-key", "s3cret")])
        #expect(rebinding?.status == 421)
        let crossSite = try await server.call("DELETE", "/collections/knowledge_384", headers: ["api-key": "s3cret", "Origin": "http://evil.example"])
        #expect(crossSite.status == 403)
        let form = try RawConnection.request(port: server.port, "PUT", "/collections/x", headers: [("Host", "127.0.0.1:\(server.port)"), ("api-key", "s3cret"), ("Content-Type", "text/plain")], body: "{}")
        #expect(form?.status == 415)
        let collections = try await server.vectors.client().call(VectorSearchMethods.listCollections, .init(), options: CallOptions(metadata: ["authorization": "Bearer s3cret"]))
        #expect(collections.collections.map(\.config.name).contains("knowledge_384"))
    }

    @Test("an acknowledged write through the Qdrant port survives kill -9")
    func acknowledgedWritesSurviveKill() async throws {
        let data = temporaryDirectory("kb-qdrant")
        let first = try await QdrantUnderTest.start(dataDirectory: data)
        _ = try await first.result("PUT", "/collections/c", #"{"vectors": {"size": 4, "distance": "Euclid"}}"#)
        _ = try await first.result("PUT", "/collections/c/points", QdrantFixture.points)
        await first.vectors.service.stop(signal: SIGKILL)
        let second = try await QdrantUnderTest.start(dataDirectory: data)
        defer { Task { await second.vectors.service.stop() } }
        let count = try await second.result("POST", "/collections/c/points/count", "{}") as? [String: Any]
        #expect(count?["count"] as? Int == 6)
        let hits = try await second.result("POST", "/collections/c/points/search", #"{"vector": [0.05, 0.61, 0.76, 0.74], "limit": 1}"#) as? [[String: Any]]
        #expect(hits?.first?["id"] as? Int == 1)
        #expect(hits?.first?["score"] as? Double == 0)
    }

    @Test("snapshots are created and listed inside the backup root and a collection recovers from one; optimizers repair the index")
    func snapshotsAndOptimizers() async throws {
        let server = try await QdrantUnderTest.start()
        defer { Task { await server.vectors.service.stop() } }
        _ = try await server.result("PUT", "/collections/c", #"{"vectors": {"size": 4, "distance": "Cosine"}}"#)
        _ = try await server.result("PUT", "/collections/c/points", QdrantFixture.points)
        let snapshot = try await server.result("POST", "/collections/c/snapshots") as? [String: Any]
        let name = try #require(snapshot?["name"] as? String)
        #expect(FileManager.default.fileExists(atPath: server.vectors.backupDirectory.appendingPathComponent(name).appendingPathComponent("points.bin").path))
        let list = try await server.result("GET", "/collections/c/snapshots") as? [[String: Any]]
        #expect(list?.map { $0["name"] as? String } == [name])
        _ = try await server.result("POST", "/collections/c/points/delete", #"{"points": [1, 2, 3]}"#)
        _ = try await server.result("PUT", "/collections/c/snapshots/recover", #"{"location": "\#(name)"}"#)
        let count = try await server.result("POST", "/collections/c/points/count", "{}") as? [String: Any]
        #expect(count?["count"] as? Int == 6)
        let outside = try await server.call("PUT", "/collections/c/snapshots/recover", #"{"location": "file:///etc"}"#)
        #expect(outside.status == 400)

        _ = try await server.result("POST", "/collections/c/points/delete", #"{"points": [1, 2]}"#)
        _ = try await server.result("POST", "/collections/c/optimizers", #"{"optimizers_config": {"indexing_threshold": 0}}"#)
        var repaired = false
        for _ in 0..<200 {
            let answer = try await server.call("GET", "/collections/c", headers: ["User-Agent": "curl/7.88.1"])
            let status = (answer.json["result"] as? [String: Any])?["optimizer_status"] as? [String: Any]
            if status?["ok"] as? Bool == true, status?["deleted_vectors"] as? Int == 0 { repaired = true; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(repaired)
    }
}
