import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// graph-store, vector-search and inference-gateway as processes on loopback, the gateway's
/// indexer following the graph into `knowledge_384`.
final class IndexedSystem: @unchecked Sendable {
    let graphPort = freePort(), vectorPort = freePort()
    let graphData = temporaryDirectory("kb-indexer-graph")
    let vectorData = temporaryDirectory("kb-indexer-vectors")
    let gatewayData = temporaryDirectory("kb-indexer-gateway")
    let graphEnvironment: [String: String]
    var graph: ServiceProcess
    var vectors: ServiceProcess
    var gateway: ServiceProcess
    let graphClient: RPCClient
    let vectorClient: RPCClient

    init(graphEnvironment: [String: String] = [:], gatewayEnvironment: [String: String] = [:]) async throws {
        self.graphEnvironment = graphEnvironment
        graph = try Self.startGraph(port: graphPort, data: graphData, environment: graphEnvironment)
        vectors = try Self.startVectors(port: vectorPort, data: vectorData)
        try await graph.waitUntilReady()
        try await vectors.waitUntilReady(timeout: .seconds(120))
        gateway = try Self.startGateway(graphPort: graphPort, vectorPort: vectorPort, data: gatewayData, environment: gatewayEnvironment)
        try await gateway.waitUntilReady(timeout: .seconds(60))
        graphClient = RPCClient(configuration: .init(host: "127.0.0.1", port: graphPort))
        vectorClient = RPCClient(configuration: .init(host: "127.0.0.1", port: vectorPort))
    }

    static func startGraph(port: Int, data: URL, environment: [String: String]) throws -> ServiceProcess {
        try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: environment.merging(["KB_GRAPH_STORE_PORT": "\(port)"]) { $1 }, dataDirectory: data)
    }

    static func startVectors(port: Int, data: URL) throws -> ServiceProcess {
        try ServiceProcess(executable: "vector-search", envPrefix: "KB_VECTOR_SEARCH", environment: ["KB_VECTOR_SEARCH_PORT": "\(port)"], dataDirectory: data)
    }

    static func startGateway(graphPort: Int, vectorPort: Int, data: URL, environment: [String: String] = [:]) throws -> ServiceProcess {
        try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: [
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(graphPort)", "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(vectorPort)",
            "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())", "KB_INFERENCE_INDEXER_BATCH": "16",
        ].merging(environment) { $1 }, dataDirectory: data)
    }

    /// Restarts the gateway (after `signal`), on the same data folder.
    func restartGateway(signal: Int32 = SIGKILL, environment: [String: String] = [:]) async throws {
        await gateway.stop(signal: signal)
        gateway = try Self.startGateway(graphPort: graphPort, vectorPort: vectorPort, data: gatewayData, environment: environment)
        try await gateway.waitUntilReady(timeout: .seconds(60))
    }

    func restartVectors() async throws {
        await vectors.stop(signal: SIGKILL)
        vectors = try Self.startVectors(port: vectorPort, data: vectorData)
        try await vectors.waitUntilReady(timeout: .seconds(120))
    }

    func restartGraph() async throws {
        await graph.stop(signal: SIGKILL)
        graph = try Self.startGraph(port: graphPort, data: graphData, environment: graphEnvironment)
        try await graph.waitUntilReady()
    }

    func stop() async {
        await gateway.stop()
        await vectors.stop()
        await graph.stop()
        await graphClient.close()
        await vectorClient.close()
    }

    /// `GET /internal/indexer`.
    func indexer() async -> [String: Any] {
        await httpGet("http://127.0.0.1:\(gateway.adminPort)/internal/indexer", timeout: 2)?.json ?? [:]
    }

    func counter(_ name: String) async -> Int { (await indexer())[name] as? Int ?? -1 }

    /// Writes `entities` to `team`.
    func put(_ team: String, _ entities: [Kb_Graph_V1_Entity]) async throws {
        _ = try await graphClient.call(GraphStoreMethods.putEntities, .with {
            $0.team = team
            $0.entities = entities
        })
    }

    /// Every entity key (`team:name`) of the graph.
    func entityKeys() async throws -> Set<String> {
        let teams = try await graphClient.call(GraphStoreMethods.listTeams, .init()).teams.map(\.team)
        guard !teams.isEmpty else { return [] }
        var keys: Set<String> = [], cursor = ""
        repeat {
            let page = try await graphClient.call(GraphStoreMethods.queryEntities, .with { $0.teams = teams; $0.limit = 1000; $0.cursor = cursor; $0.sort = .name })
            for entity in page.entities { keys.insert("\(entity.team):\(entity.name)") }
            cursor = page.nextCursor
        } while !cursor.isEmpty
        return keys
    }

    /// The points of `ids` in `collection`, by id.
    func points(_ ids: [String], collection: String = "knowledge_384", withVector: Bool = false) async throws -> [String: Kb_Vector_V1_Point] {
        var found: [String: Kb_Vector_V1_Point] = [:]
        for start in stride(from: 0, to: ids.count, by: 500) {
            let answer = try await vectorClient.call(VectorSearchMethods.getPoints, .with {
                $0.collection = collection
                $0.ids = Array(ids[start..<min(start + 500, ids.count)])
                $0.withPayload = true
                $0.withVector = withVector
            })
            for point in answer.points { found[point.id] = point }
        }
        return found
    }

    func pointCount(_ collection: String = "knowledge_384") async throws -> Int64 {
        try await vectorClient.call(VectorSearchMethods.describeCollection, .with { $0.name = collection }).pointCount
    }

    /// Waits until the indexer has caught up with the feed's head and `condition` holds.
    func waitUntilIndexed(timeout: Duration = .seconds(120), _ what: String, condition: @Sendable () async throws -> Bool = { true }) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let head = (try? await graphClient.call(GraphStoreMethods.getStats, .init()).feedHeadSeq) ?? -1
            let status = await indexer()
            if let cursor = status["cursor"] as? Int, cursor == head, (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ProcessFailure("\(what): not within \(timeout); indexer \(await indexer()); gateway log: \(gateway.log.suffix(3000))")
    }

    /// The point count equals the entity count and every entity has its point.
    func exactlyIndexed() async throws -> Bool {
        let keys = try await entityKeys()
        let found = try await points(Array(keys))
        let count = try await pointCount()
        return found.count == keys.count && count == Int64(keys.count)
    }
}

func graphEntity(_ name: String, type: String = "Library", observations: [String], significance: Int32 = 0, source: Kb_Graph_V1_Source = .manual) -> Kb_Graph_V1_Entity {
    .with {
        $0.name = name
        $0.entityType = type
        $0.observations = observations.map { text in .with { $0.content = text } }
        $0.significance = significance
        $0.source = source
    }
}

func payloadKeyword(_ point: Kb_Vector_V1_Point?, _ field: String) -> String? {
    if case .keyword(let value) = point?.payload[field]?.kind { return value }
    return nil
}

@Suite("the graph→vector indexer, over real processes", .serialized)
struct KnowledgeIndexerProcessTests {
    @Test("written entities become points with their payload; the same content is not embedded again; a change is; a delete removes the point", .timeLimit(.minutes(5)))
    func followsTheFeed() async throws {
        let system = try await IndexedSystem()
        defer { Task { await system.stop() } }
        try await system.put("alpha", [
            graphEntity("zlib", observations: ["compression library implementing deflate", "used by PNG decoders"], significance: 8),
            graphEntity("jq", type: "Tool", observations: ["command-line JSON processor"], source: .auto),
        ])
        try await system.put("beta", [graphEntity("zlib", observations: ["a different team's zlib"])])
        try await system.waitUntilIndexed("three points") { try await system.pointCount() == 3 }
        let found = try await system.points(["alpha:zlib", "alpha:jq", "beta:zlib"])
        let zlib = try #require(found["alpha:zlib"])
        #expect(payloadKeyword(zlib, "team") == "alpha")
        #expect(payloadKeyword(zlib, "entityType") == "Library")
        #expect(payloadKeyword(zlib, "name") == "zlib")
        #expect(payloadKeyword(zlib, "source") == "manual")
        #expect(zlib.payload["significance"]?.integer == 8)
        #expect(zlib.payload["text"]?.text == "zlib (Library)\ncompression library implementing deflate\nused by PNG decoders")
        #expect(payloadKeyword(found["alpha:jq"], "source") == "auto")
        #expect(found["alpha:jq"]?.payload["significance"]?.integer == 5, "unset significance is stored as 5")
        #expect(payloadKeyword(found["beta:zlib"], "team") == "beta")
        #expect(await system.counter("indexed") == 3)

        // A search by meaning finds jq for a question it shares no word with but "JSON".
        let gatewayClient = RPCClient(configuration: .init(host: "127.0.0.1", port: system.gateway.port))
        let query = try await gatewayClient.call(InferenceGatewayMethods.embed, .with { $0.texts = ["tool to filter JSON on the command line"] })
        await gatewayClient.close()
        let hits = try await system.vectorClient.call(VectorSearchMethods.search, .with {
            $0.collection = "knowledge_384"
            $0.vector = query.embeddings[0].values
            $0.limit = 1
            $0.withPayload = true
        })
        #expect(hits.results.first?.point.id == "alpha:jq")

        // The same content again: a feed entry, no embedding.
        try await system.put("alpha", [graphEntity("zlib", observations: ["compression library implementing deflate", "used by PNG decoders"], significance: 8)])
        try await system.waitUntilIndexed("the repeat is seen") { await system.counter("unchanged") >= 1 }
        #expect(await system.counter("indexed") == 3, "unchanged content is not embedded again")

        // A new observation: embedded again, the point's text follows.
        try await system.put("alpha", [graphEntity("zlib", observations: ["also known as libz"], significance: 8)])
        try await system.waitUntilIndexed("the change is indexed") { await system.counter("indexed") == 4 }
        let changed = try await system.points(["alpha:zlib"])["alpha:zlib"]
        #expect(changed?.payload["text"]?.text.hasSuffix("also known as libz") == true)

        _ = try await system.graphClient.call(GraphStoreMethods.deleteEntities, .with { $0.team = "alpha"; $0.names = ["jq"] })
        try await system.waitUntilIndexed("the point of the deleted entity goes") { try await system.pointCount() == 2 }
        #expect(try await system.points(["alpha:jq"]).isEmpty)

        let metrics = await httpGet("http://127.0.0.1:\(system.gateway.adminPort)/metrics")?.body ?? ""
        for name in ["knowledge_index_lag_seconds", "knowledge_index_changes_behind", "knowledge_index_indexed_total"] {
            #expect(metrics.contains(name), "metric \(name)")
        }
        let health = await httpGet("http://127.0.0.1:\(system.gateway.adminPort)/health")?.json ?? [:]
        let component = (health["components"] as? [String: Any])?["indexer"] as? [String: Any]
        #expect(component?["status"] as? String == "healthy")

        // vector-search stops answering: the component says so, the gateway stays up.
        await system.vectors.stop(signal: SIGKILL)
        try await system.put("alpha", [graphEntity("libpng", observations: ["PNG reference library"])])
        var degraded = false
        for _ in 0..<100 where !degraded {
            let health = await httpGet("http://127.0.0.1:\(system.gateway.adminPort)/health")?.json ?? [:]
            let component = (health["components"] as? [String: Any])?["indexer"] as? [String: Any]
            degraded = component?["status"] as? String == "degraded" && (component?["error"] as? String ?? "").contains("vector-search")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(degraded, "the indexer component is degraded while vector-search is down")
        #expect(system.gateway.process.isRunning)
        // The stored cursor has not moved past the change vector-search never acknowledged.
        let cursorPath = try #require(FileManager.default.enumerator(atPath: system.gatewayData.path)?.compactMap { $0 as? String }.first { $0.hasSuffix("indexer.cursor") })
        let stored = Int64(try String(contentsOf: system.gatewayData.appendingPathComponent(cursorPath), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        let head = try await system.graphClient.call(GraphStoreMethods.getStats, .init()).feedHeadSeq
        #expect(stored != nil && stored! < head, "cursor \(String(describing: stored)) must stay before the unacknowledged change \(head)")
        // kill -9 of the gateway meanwhile: the restarted one picks the change up from the file.
        await system.gateway.stop(signal: SIGKILL)
        system.vectors = try IndexedSystem.startVectors(port: system.vectorPort, data: system.vectorData)
        try await system.vectors.waitUntilReady(timeout: .seconds(120))
        system.gateway = try IndexedSystem.startGateway(graphPort: system.graphPort, vectorPort: system.vectorPort, data: system.gatewayData)
        try await system.gateway.waitUntilReady(timeout: .seconds(60))
        try await system.waitUntilIndexed("indexed once vector-search is back") { try await system.exactlyIndexed() }
        #expect(try await system.points(["alpha:libpng"]).count == 1)
    }

    @Test("kill -9 of the gateway, vector-search and graph-store while entities stream in: afterwards every entity has exactly one point", .timeLimit(.minutes(10)))
    func killNineLosesAndDuplicatesNothing() async throws {
        let system = try await IndexedSystem()
        defer { Task { await system.stop() } }
        let writer = Task {
            let client = RPCClient(configuration: .init(host: "127.0.0.1", port: system.graphPort))
            defer { Task { await client.close() } }
            var written = 0, batch = 0
            while !Task.isCancelled && batch < 400 {
                let entities = (0..<5).map { index in graphEntity("e\(batch)-\(index)", observations: ["entity \(batch) \(index) of the kill test", "batch \(batch)"]) }
                do {
                    _ = try await client.call(GraphStoreMethods.putEntities, .with { $0.team = batch % 2 == 0 ? "even" : "odd"; $0.entities = entities }, options: CallOptions(timeout: .seconds(2)))
                    if batch % 7 == 3 {
                        _ = try await client.call(GraphStoreMethods.deleteEntities, .with { $0.team = "odd"; $0.names = ["e\(batch - 2)-0"] }, options: CallOptions(timeout: .seconds(2)))
                    }
                    written += 5
                } catch {
                    try? await Task.sleep(for: .milliseconds(50))
                    continue  // graph-store is restarting: the same batch again
                }
                batch += 1
                try? await Task.sleep(for: .milliseconds(10))
            }
            return written
        }
        for _ in 0..<100 where await system.counter("indexed") <= 0 { try await Task.sleep(for: .milliseconds(100)) }
        #expect(await system.counter("indexed") > 0, "the gateway is indexing when it is killed")
        try await Task.sleep(for: .seconds(1))
        try await system.restartGateway(signal: SIGKILL)
        try await Task.sleep(for: .seconds(2))
        try await system.restartVectors()
        try await Task.sleep(for: .seconds(2))
        try await system.restartGraph()
        try await Task.sleep(for: .seconds(1))
        try await system.restartGateway(signal: SIGKILL)
        let written = await writer.value
        #expect(written >= 1000)
        try await system.waitUntilIndexed(timeout: .seconds(300), "every entity indexed exactly once") { try await system.exactlyIndexed() }
        let keys = try await system.entityKeys()
        #expect(try await system.pointCount() == Int64(keys.count))
        #expect(!keys.contains("odd:e1-0") && keys.contains("even:e0-0"), "deletes and upserts both went through")
    }

    @Test("a cursor the feed no longer holds (OUT_OF_RANGE), or a collection deleted under it (while running or before a start): the indexer resynchronises from the graph, deleting points of entities that are gone", .timeLimit(.minutes(5)))
    func resynchronisesOutOfRange() async throws {
        let system = try await IndexedSystem(graphEnvironment: ["KB_GRAPH_FEED_MAX_CHANGES": "5"])
        defer { Task { await system.stop() } }
        try await system.put("team", (0..<4).map { graphEntity("first\($0)", observations: ["first wave \($0)"]) })
        try await system.waitUntilIndexed("the first wave") { try await system.pointCount() == 4 }
        await system.gateway.stop()
        _ = try await system.graphClient.call(GraphStoreMethods.deleteEntities, .with { $0.team = "team"; $0.names = ["first0", "first1"] })
        for wave in 0..<10 {
            try await system.put("team", [graphEntity("second\(wave)", observations: ["second wave \(wave)"])])
        }
        // A point the graph never had (as if left over): a resynchronisation removes it.
        let stray = try await system.points(["team:first2"], withVector: true)["team:first2"]!
        _ = try await system.vectorClient.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "knowledge_384"
            $0.points = [.with { $0.id = "gone:ghost"; $0.vector = stray.vector }]
        })
        let stats = try await system.graphClient.call(GraphStoreMethods.getStats, .init())
        #expect(stats.feedFirstSeq > 5, "the feed no longer holds the cursor")
        try await system.restartGateway(signal: SIGTERM)
        try await system.waitUntilIndexed("resynchronised") { try await system.exactlyIndexed() }
        #expect(await system.counter("resyncs") == 1)
        #expect(await system.counter("indexed") == 10, "the unchanged first2, first3 are not embedded again")
        #expect(try await system.points(["gone:ghost", "team:first0"]).isEmpty)

        // An operator deletes the collection: the indexer recreates it and resynchronises.
        _ = try await system.vectorClient.call(VectorSearchMethods.deleteCollection, .with { $0.name = "knowledge_384" })
        try await system.put("team", [graphEntity("third", observations: ["written after the collection was deleted"])])
        try await system.waitUntilIndexed("recreated and resynchronised") { try await system.exactlyIndexed() }
        #expect(await system.counter("resyncs") == 2)

        // … and a gateway that starts while the collection is missing does the same.
        await system.gateway.stop()
        _ = try await system.vectorClient.call(VectorSearchMethods.deleteCollection, .with { $0.name = "knowledge_384" })
        try await system.restartGateway(signal: SIGTERM)
        try await system.waitUntilIndexed("resynchronised at start") { try await system.exactlyIndexed() }
        #expect(await system.counter("resyncs") == 1)
    }

    @Test("kb vectors rebuild-from-graph re-embeds into a new collection that replaces knowledge_384 when complete; --team copies the other teams' points", .timeLimit(.minutes(5)))
    func rebuildFromGraph() async throws {
        let system = try await IndexedSystem()
        defer { Task { await system.stop() } }
        try await system.put("alpha", (0..<30).map { graphEntity("a\($0)", observations: ["alpha entity \($0)"]) })
        try await system.put("beta", (0..<20).map { graphEntity("b\($0)", observations: ["beta entity \($0)"]) })
        try await system.waitUntilIndexed("fifty points") { try await system.pointCount() == 50 }
        let before = try await system.points(["beta:b0"], withVector: true)["beta:b0"]
        _ = try await system.vectorClient.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "knowledge_384"
            $0.points = [.with { $0.id = "alpha:ghost"; $0.vector = before!.vector }]
        })
        let environment = ["KB_INFERENCE_GATEWAY_ADMIN_PORT": "\(system.gateway.adminPort)"]
        let kb = builtProductsDirectory.appendingPathComponent("kb")
        let whole = try runProgram(kb, ["vectors", "rebuild-from-graph"], environment: environment)
        #expect(whole.status == 0, "\(whole.stderr)")
        #expect(whole.stdout.contains("50 entities re-embedded"), "\(whole.stdout)")
        #expect(try await system.pointCount() == 50, "the ghost point is not in the rebuilt collection")
        #expect(await system.counter("indexed") == 100)
        let collections = try await system.vectorClient.call(VectorSearchMethods.listCollections, .init()).collections.map(\.config.name)
        #expect(!collections.contains("knowledge_384_rebuild"))

        // Taken after the whole rebuild: a vector computed in another batch may differ in its last
        // bits (other matrix shapes), so only a copy is bit-for-bit the same.
        let copiedBefore = try await system.points(["beta:b0"], withVector: true)["beta:b0"]
        // This time through the guide's script.
        let script = packageRoot.appendingPathComponent("deploy/scripts/rebuild-qdrant-from-graph.sh")
        let team = try runProgram(URL(fileURLWithPath: "/bin/bash"), [script.path, "--team", "alpha"], environment: environment.merging([
            "KB": kb.path, "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
        ]) { $1 })
        #expect(team.status == 0, "\(team.stderr)")
        #expect(team.stdout.contains("30 entities re-embedded"), "\(team.stdout)")
        #expect(team.stdout.contains("knowledge_384") && team.stdout.contains("Qdrant rebuild completed"), "\(team.stdout)")
        #expect(await system.counter("indexed") == 130, "beta's points are copied, not embedded")
        let after = try await system.points(["beta:b0"], withVector: true)["beta:b0"]
        #expect(after?.vector == copiedBefore?.vector, "beta's points are copied as they were")
        #expect(try await system.exactlyIndexed())

        // Changes written after the rebuild are followed into the new collection.
        try await system.put("beta", [graphEntity("b-late", observations: ["written after the rebuild"])])
        try await system.waitUntilIndexed("followed after the swap") { try await system.exactlyIndexed() }
        let notAnObject = await httpRequest("POST", "http://127.0.0.1:\(system.gateway.adminPort)/internal/indexer/rebuild", body: Data("[]".utf8), headers: ["Content-Type": "application/json"])
        #expect(notAnObject?.status == 400)
    }

    @Test("with an OpenAI key, each entity is also embedded by text-embedding-3-small into knowledge_1536; unchanged content is not sent again; deletes remove both points", .timeLimit(.minutes(5)))
    func providerCollection() async throws {
        let openAI = try ScriptedHTTPServer()
        defer { openAI.stop() }
        let vector = (0..<1536).map { index in String(format: "%.4f", sin(Double(index))) }.joined(separator: ",")
        openAI.answer("/v1/embeddings", with: .init(body: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[\#(vector)]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":7,"total_tokens":7}}"#))
        let directory = temporaryDirectory("kb-indexer-providers")
        let file = try writeProvidersFile("""
            providers:
              openai:
                api: openai
                base_url: \(openAI.baseURL)/v1
                api_key_env: OPENAI_API_KEY
                models: [gpt-4o-mini]
                embedding_models: [text-embedding-3-small]
            """, in: directory)
        let system = try await IndexedSystem(gatewayEnvironment: [
            "KB_INFERENCE_PROVIDERS_FILE": file.path, "OPENAI_API_KEY": "sk-test-indexer", "KB_INFERENCE_BUDGET_UNREACHABLE": "allow-paid",
            "KB_INFERENCE_INDEXER_BATCH": "1",  // one text per provider call: the mock answers one vector
        ])
        defer { Task { await system.stop() } }
        try await system.put("alpha", [graphEntity("zlib", observations: ["compression library"])])
        try await system.put("alpha", [graphEntity("jq", type: "Tool", observations: ["command-line JSON processor"])])
        try await system.waitUntilIndexed("both collections hold both entities") {
            let large = try await system.pointCount("knowledge_1536"), small = try await system.pointCount()
            return large == 2 && small == 2
        }
        let point = try #require(try await system.points(["alpha:jq"], collection: "knowledge_1536", withVector: true)["alpha:jq"])
        #expect(point.vector.count == 1536)
        #expect(payloadKeyword(point, "entityType") == "Tool")
        #expect(point.payload["text"]?.text == "jq (Tool)\ncommand-line JSON processor")
        let calls = openAI.received.filter { $0.path.hasSuffix("/embeddings") }
        #expect(calls.count == 2)
        #expect(calls.first?.header("authorization") == "Bearer sk-test-indexer")
        let provider = (await system.indexer())["provider"] as? [String: Any]
        #expect(provider?["indexed"] as? Int == 2)

        try await system.put("alpha", [graphEntity("zlib", observations: ["compression library"])])
        try await system.waitUntilIndexed("the repeat is seen") { await system.counter("unchanged") >= 1 }
        #expect(openAI.received.filter { $0.path.hasSuffix("/embeddings") }.count == 2, "unchanged content is not sent to the provider again")

        _ = try await system.graphClient.call(GraphStoreMethods.deleteEntities, .with { $0.team = "alpha"; $0.names = ["zlib"] })
        try await system.waitUntilIndexed("deleted from both") {
            let large = try await system.pointCount("knowledge_1536"), small = try await system.pointCount()
            return large == 1 && small == 1
        }

        // rebuild-from-graph replaces knowledge_1536 too (a stray point there goes).
        let jq = try #require(try await system.points(["alpha:jq"], collection: "knowledge_1536", withVector: true)["alpha:jq"])
        _ = try await system.vectorClient.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "knowledge_1536"
            $0.points = [.with { $0.id = "alpha:ghost"; $0.vector = jq.vector }]
        })
        let rebuilt = try runProgram(builtProductsDirectory.appendingPathComponent("kb"), ["vectors", "rebuild-from-graph"], environment: ["KB_INFERENCE_GATEWAY_ADMIN_PORT": "\(system.gateway.adminPort)"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(try await system.pointCount("knowledge_1536") == 1)
        #expect(try await system.pointCount() == 1)
        #expect(openAI.received.filter { $0.path.hasSuffix("/embeddings") }.count == 3, "the rebuild embeds jq again with the provider")
    }

    /// Throughput (printed, never asserted): entities written, then timed until all are
    /// embedded and indexed. `KB_INDEXER_BENCH_ENTITIES` sets the count (default 1000).
    @Test("indexer throughput: entities embedded and indexed per second (printed)", .timeLimit(.minutes(10)))
    func throughput() async throws {
        let count = Int(ProcessInfo.processInfo.environment["KB_INDEXER_BENCH_ENTITIES"] ?? "") ?? 1000
        let system = try await IndexedSystem(gatewayEnvironment: ["KB_INFERENCE_INDEXER_BATCH": "64", "KB_INFERENCE_INDEXER": "off"])
        defer { Task { await system.stop() } }
        for start in stride(from: 0, to: count, by: 500) {
            try await system.put("bench", (start..<min(start + 500, count)).map { index in
                graphEntity("package-\(index)", observations: [
                    "Debian-like package number \(index), providing a library or a tool",
                    "depends on libc6 and on package-\(index / 2)", "maintained by the team of section \(index % 17)",
                ])
            })
        }
        let started = ContinuousClock.now
        try await system.restartGateway(signal: SIGTERM, environment: ["KB_INFERENCE_INDEXER_BATCH": "64"])
        try await system.waitUntilIndexed(timeout: .seconds(540), "\(count) entities indexed") { try await system.pointCount() == Int64(count) }
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
        print("indexer throughput: \(count) entities embedded and indexed in \(String(format: "%.1f", seconds)) s (gateway start included) = \(String(format: "%.0f", Double(count) / seconds)) entities/s")
        #expect(await system.counter("indexed") == count)
    }
}
