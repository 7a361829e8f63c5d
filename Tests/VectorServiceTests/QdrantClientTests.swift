import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// The real `qdrant-client` package from PyPI (installed by `scripts/setup-system.sh --test`)
/// against vector-search's Qdrant port: `Tests/Fixtures/qdrant/qdrant_client_session.py` runs
/// a whole session and reports every answer; each is checked here against the RPC's answer for
/// the same points (a twin collection written over RPC).
@Suite("qdrant-client against the Qdrant-compatible port", .serialized)
struct QdrantClientTests {
    static let count = 400

    /// Point `index`: even indexes have integer ids, odd ones UUIDs.
    static func id(_ index: Int) -> String {
        index % 2 == 0 ? String(index) : String(format: "00000000-0000-4000-8000-%012x", index)
    }

    static func payload(_ index: Int) -> [String: Any] {
        ["group": "g\(index % 100)", "n": index, "text": Embeddings.texts[index]]
    }

    @Test("create, upsert (integer and UUID ids), query with and without filters, batch, scroll, count, retrieve, set payload, delete, snapshot and recover, delete: all as the RPC answers")
    func qdrantClientSession() async throws {
        try #require(Embeddings.base.count >= Self.count, "the shared embeddings are missing")
        let server = try await QdrantUnderTest.start(environment: ["KB_AUTH_TOKEN": "qdrant-key"])
        defer { Task { await server.vectors.service.stop() } }
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: server.vectors.service.port)
        configuration.authToken = "qdrant-key"
        let client = RPCClient(configuration: configuration)

        // The twin collection over RPC: the same points, the same settings.
        _ = try await client.call(VectorSearchMethods.createCollection, .with {
            $0.config = .with { $0.name = "twin"; $0.dimension = 384; $0.distance = .cosine; $0.textField = "text" }
        })
        _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "twin"
            $0.points = (0..<Self.count).map { index in
                .with {
                    $0.id = Self.id(index)
                    $0.vector = Embeddings.base[index]
                    $0.payload["group"] = .with { $0.keyword = "g\(index % 100)" }
                    $0.payload["n"] = .with { $0.integer = Int64(index) }
                    $0.payload["text"] = .with { $0.text = Embeddings.texts[index] }
                }
            }
        })

        let folder = temporaryDirectory("kb-qdrant-client")
        let dataset = folder.appendingPathComponent("dataset.json")
        let points: [[String: Any]] = (0..<Self.count).map { index in
            ["id": index % 2 == 0 ? index as Any : Self.id(index) as Any, "vector": Embeddings.base[index].map(Double.init), "payload": Self.payload(index)]
        }
        let queries = Embeddings.queries.prefix(3).map { $0.map(Double.init) }
        try JSONSerialization.data(withJSONObject: ["dim": 384, "points": points, "queries": queries]).write(to: dataset)
        let script = packageRoot.appendingPathComponent("Tests/Fixtures/qdrant/qdrant_client_session.py")
        let run = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, server.base, dataset.path, "qdrant-key"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout) \(run.stderr)")

        #expect(report["warnings"] as? [String] == [], "the client warned: \(report["warnings"] ?? "")")
        #expect(report["info_version"] as? String == "1.20.0")
        #expect(report["exists"] as? Bool == true)
        #expect(report["listed"] as? Bool == true)
        let collection = report["collection"] as? [String: Any]
        #expect(collection?["points"] as? Int == Self.count)
        #expect(collection?["size"] as? Int == 384)
        #expect(collection?["status"] as? String == "green")
        #expect(collection?["optimizer"] as? String == "ok")
        #expect(collection?["m"] as? Int == 16)

        // Searches: the same ids in the same order, the same scores, as the RPC on the twin.
        func rpcHits(_ vector: [Float], limit: Int32, filter: Kb_Vector_V1_Filter? = nil) async throws -> [String] {
            let answer = try await client.call(VectorSearchMethods.search, .with {
                $0.collection = "twin"; $0.vector = vector; $0.limit = limit
                if let filter { $0.filter = filter }
            })
            return answer.results.map { "\($0.point.id) \(String(format: "%.4f", $0.score))" }
        }
        func reported(_ key: String) -> [String] {
            (report[key] as? [[Any]] ?? []).map { "\($0[0]) \(String(format: "%.4f", ($0[1] as? Double) ?? -9))" }
        }
        let groupFilter = Kb_Vector_V1_Filter.with {
            $0.must = [.with { $0.match = .with { $0.key = "group"; $0.value = .with { $0.keyword = "g3" } } }]
            $0.mustNot = [.with { $0.range = .with { $0.key = "n"; $0.lower = .with { $0.value = 200; $0.inclusive = true } } }]
        }
        let query = Embeddings.queries[0]
        let expected = try await rpcHits(query, limit: 10)
        #expect(reported("query") == expected)
        #expect(reported("query_exact") == expected)
        let filtered = try await rpcHits(query, limit: 5, filter: groupFilter)
        #expect(filtered.count == 2)
        #expect(reported("query_filtered") == filtered)
        #expect(reported("search_filtered") == (try await rpcHits(query, limit: 10, filter: groupFilter)))
        #expect(report["query_filtered_payloads"] as? [String] == ["g3", "g3"])
        #expect(reported("query_by_id").first == "0 1.0000")
        var batch: [[String]] = []
        for vector in Embeddings.queries.prefix(3) { batch.append(try await rpcHits(vector, limit: 5)) }
        for key in ["query_batch", "search_batch"] {
            let answers = (report[key] as? [[[Any]]] ?? []).map { $0.map { "\($0[0]) \(String(format: "%.4f", ($0[1] as? Double) ?? -9))" } }
            #expect(answers == batch, "\(key)")
        }

        // Scroll, count, retrieve.
        let scroll = report["scroll"] as? [String: Any]
        let scrolled = (scroll?["ids"] as? [Any] ?? []).map { "\($0)" }
        #expect(scrolled.count == Self.count)
        #expect(Set(scrolled) == Set((0..<Self.count).map(Self.id)))
        #expect(scroll?["pages"] as? Int == 7)
        #expect(report["count"] as? Int == Self.count)
        #expect(report["count_filtered"] as? Int == 2)
        let retrieved = report["retrieve"] as? [[String: Any]] ?? []
        #expect(retrieved.map { "\($0["id"]!)" } == [Self.id(0), Self.id(1)])
        #expect(retrieved.first?["dim"] as? Int == 384)
        let twin = try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "twin"; $0.ids = [Self.id(0)]; $0.withPayload = true })
        let firstPayload = retrieved.first?["payload"] as? [String: Any]
        #expect(firstPayload?["group"] as? String == twin.points[0].payload["group"]?.keyword)
        #expect(firstPayload?["n"] as? Int == Int(twin.points[0].payload["n"]?.integer ?? -1))
        #expect(firstPayload?["text"] as? String == twin.points[0].payload["text"]?.text)

        // Payload changes, deletes, snapshot and recovery, collection delete.
        let changed = report["after_payload"] as? [String: [String: Any]] ?? [:]
        #expect(changed[Self.id(0)]?["reviewed"] as? Bool == true)
        #expect(changed[Self.id(1)]?["group"] as? String == "reviewed")
        #expect(changed[Self.id(1)]?["text"] as? String == Embeddings.texts[1])
        #expect(changed[Self.id(2)]?.keys.sorted() == ["only"])
        #expect(report["after_delete_count"] as? Int == Self.count - 1 - 8)
        let snapshot = report["snapshot"] as? String ?? "?"
        #expect(report["snapshots"] as? [String] == [snapshot])
        #expect(FileManager.default.fileExists(atPath: server.vectors.backupDirectory.appendingPathComponent(snapshot).path))
        #expect(report["emptied_count"] as? Int == 0)
        #expect(report["recovered_count"] as? Int == Self.count - 9)
        #expect(report["deleted"] as? Bool == true)
        #expect(report["exists_after_delete"] as? Bool == false)
        await #expect(throws: RPCError.self) { try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "qc" }) }
    }
}
