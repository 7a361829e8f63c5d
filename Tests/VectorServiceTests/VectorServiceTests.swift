import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing
import VectorIndex

/// The shared embeddings with their texts (for keyword and hybrid search).
enum Embeddings {
    static let directory: URL = {
        if let explicit = ProcessInfo.processInfo.environment["KB_VECTOR_DATA"] { return URL(fileURLWithPath: explicit) }
        let beside = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/vectors/wordnet-minilm-384")
        if FileManager.default.fileExists(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: "/work/shared/data/vectors/wordnet-minilm-384")
    }()

    static let base: [[Float]] = (try? VectorFiles.readFvecs(directory.appendingPathComponent("base.fvecs"), limit: 6000).vectors) ?? []
    static let queries: [[Float]] = (try? VectorFiles.readFvecs(directory.appendingPathComponent("queries.fvecs"), limit: 200).vectors) ?? []
    static let texts: [String] = ((try? String(contentsOf: directory.appendingPathComponent("base_texts.txt"), encoding: .utf8)) ?? "")
        .split(separator: "\n", omittingEmptySubsequences: false).prefix(6000).map(String.init)

    /// Point `index` of the base: payload text, a group keyword (100 groups), its number, a flag.
    static func point(_ index: Int) -> Kb_Vector_V1_Point {
        var point = Kb_Vector_V1_Point()
        point.id = "p\(index)"
        point.vector = base[index]
        point.payload["text"] = .with { $0.text = texts[index] }
        point.payload["group"] = .with { $0.keyword = "g\(index % 100)" }
        point.payload["n"] = .with { $0.integer = Int64(index) }
        point.payload["even"] = .with { $0.boolean = index % 2 == 0 }
        return point
    }
}

struct VectorServiceUnderTest {
    let service: ServiceProcess
    /// The service's backup folder (`KB_BACKUP_DIR`), a fresh one per start unless given.
    let backupDirectory: URL

    static func start(dataDirectory: URL? = nil, environment: [String: String] = [:]) async throws -> VectorServiceUnderTest {
        var environment = environment
        if environment["KB_BACKUP_DIR"] == nil { environment["KB_BACKUP_DIR"] = temporaryDirectory("vector-backups").path }
        let service = try ServiceProcess(executable: "vector-search", envPrefix: "KB_VECTOR_SEARCH", environment: environment, dataDirectory: dataDirectory)
        try await service.waitUntilReady(timeout: .seconds(120))
        return VectorServiceUnderTest(service: service, backupDirectory: URL(fileURLWithPath: environment["KB_BACKUP_DIR"]!))
    }

    func client() -> RPCClient {
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: service.port)
        configuration.defaultTimeout = .seconds(300)
        return RPCClient(configuration: configuration)
    }

    func kb(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProgram(builtProductsDirectory.appendingPathComponent("kb"), arguments, environment: ["KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(service.port)"])
    }
}

func createCollection(_ client: RPCClient, _ name: String, dimension: Int32 = 384) async throws {
    _ = try await client.call(VectorSearchMethods.createCollection, .with {
        $0.config.name = name
        $0.config.dimension = dimension
        $0.config.distance = .cosine
        $0.config.textField = "text"
    })
}

func upsert(_ client: RPCClient, _ collection: String, _ range: Range<Int>, batch: Int = 500) async throws {
    for start in stride(from: range.lowerBound, to: range.upperBound, by: batch) {
        _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = collection
            $0.points = (start..<min(start + batch, range.upperBound)).map(Embeddings.point)
        })
    }
}

func rpcFailure(_ body: () async throws -> Void) async -> RPCError? {
    do { try await body(); return nil } catch let error as RPCError { return error } catch { return RPCError(.unknown, "\(error)") }
}

@Suite("vector-search as a process", .serialized)
struct VectorServiceTests {
    @Test("default collections, validation (dimension, NaN, names) changes nothing, search recall against exact, filters incl. 1%")
    func searchAndFilters() async throws {
        try #require(Embeddings.base.count == 6000, "shared vectors missing at \(Embeddings.directory.path)")
        let vectors = try await VectorServiceUnderTest.start()
        let client = vectors.client()
        let names = try await client.call(VectorSearchMethods.listCollections, .init()).collections.map(\.config.name)
        #expect(names == ["knowledge_1536", "knowledge_384"])
        try await createCollection(client, "glosses")
        try await upsert(client, "glosses", 0..<5000)

        var bad = Embeddings.point(5000)
        bad.vector.removeLast()
        let wrongDimension = await rpcFailure { _ = try await client.call(VectorSearchMethods.upsertPoints, .with { $0.collection = "glosses"; $0.points = [Embeddings.point(5001), bad] }) }
        #expect(wrongDimension?.code == .invalidArgument && wrongDimension?.message.hasPrefix("points[1].vector: has 383 values") == true, "\(String(describing: wrongDimension))")
        var nan = Embeddings.point(5002)
        nan.vector[7] = .nan
        let notFinite = await rpcFailure { _ = try await client.call(VectorSearchMethods.upsertPoints, .with { $0.collection = "glosses"; $0.points = [nan] }) }
        #expect(notFinite?.code == .invalidArgument && notFinite?.message.contains("NaN") == true)
        #expect(try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "glosses" }).pointCount == 5000, "nothing of a bad batch was written")
        let badName = await rpcFailure { try await createCollection(client, "../etc") }
        #expect(badName?.code == .invalidArgument)
        let missing = await rpcFailure { _ = try await client.call(VectorSearchMethods.search, .with { $0.collection = "nope"; $0.vector = Embeddings.queries[0] }) }
        #expect(missing?.code == .notFound)

        // HNSW against exact (the service's own full scan).
        var hits = 0
        for query in Embeddings.queries.prefix(60) {
            let approximate = try await client.call(VectorSearchMethods.search, .with { $0.collection = "glosses"; $0.vector = query; $0.limit = 10; $0.ef = 64 })
            #expect(!approximate.exact)
            let exact = try await client.call(VectorSearchMethods.search, .with { $0.collection = "glosses"; $0.vector = query; $0.limit = 10; $0.exact = true })
            #expect(exact.exact)
            hits += Set(approximate.results.map(\.point.id)).intersection(exact.results.map(\.point.id)).count
        }
        #expect(Double(hits) / 600 >= 0.95, "recall@10 \(Double(hits) / 600)")

        // A filter keeping 1% (group g7: 50 points): still `limit` results, all matching.
        let onePercent = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "glosses"; $0.vector = Embeddings.queries[1]; $0.limit = 10; $0.withPayload = true
            $0.filter.must = [.with { $0.match = .with { $0.key = "group"; $0.value = .with { $0.keyword = "g7" } } }]
        })
        #expect(onePercent.results.count == 10)
        #expect(onePercent.results.allSatisfy { $0.point.payload["group"]?.keyword == "g7" })
        // The same 1% through a filter with no keyword term (a range): walked by HNSW with the filter.
        let range = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "glosses"; $0.vector = Embeddings.queries[1]; $0.limit = 10; $0.withPayload = true
            $0.filter.must = [.with { $0.range = .with { $0.key = "n"; $0.lower = .with { $0.value = 1000; $0.inclusive = true }; $0.upper = .with { $0.value = 1050; $0.inclusive = false } } }]
        })
        #expect(range.results.count == 10 && !range.exact)
        #expect(range.results.allSatisfy { (1000..<1050).contains($0.point.payload["n"]!.integer) })
        let exactRange = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "glosses"; $0.vector = Embeddings.queries[1]; $0.limit = 10; $0.exact = true
            $0.filter.must = [.with { $0.range = .with { $0.key = "n"; $0.lower = .with { $0.value = 1000; $0.inclusive = true }; $0.upper = .with { $0.value = 1050; $0.inclusive = false } } }]
        })
        #expect(Set(range.results.map(\.point.id)).intersection(exactRange.results.map(\.point.id)).count >= 9)
        // must_not, should, any, has_id; threshold; with_vector.
        let combined = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "glosses"; $0.vector = Embeddings.queries[2]; $0.limit = 20; $0.withPayload = true; $0.withVector = true
            $0.filter.mustNot = [.with { $0.match = .with { $0.key = "even"; $0.value = .with { $0.boolean = true } } }]
            $0.filter.should = [.with { $0.any = .with { $0.key = "group"; $0.keywords = ["g1", "g3", "g5"] } }, .with { $0.hasID_p = .with { $0.values = ["p4"] } }]
            $0.scoreThreshold = .with { $0.value = 0.05 }
        })
        #expect(!combined.results.isEmpty)
        #expect(combined.results.allSatisfy { ["g1", "g3", "g5"].contains($0.point.payload["group"]!.keyword) && $0.score >= 0.05 && $0.point.vector.count == 384 })
        let badFilter = await rpcFailure { _ = try await client.call(VectorSearchMethods.search, .with { $0.collection = "glosses"; $0.vector = Embeddings.queries[0]; $0.filter.must = [.init()] }) }
        #expect(badFilter?.code == .invalidArgument && badFilter?.message.hasPrefix("filter.must[0]") == true)

        // Deletes by id and by filter.
        let deleted = try await client.call(VectorSearchMethods.deletePoints, .with {
            $0.collection = "glosses"; $0.ids = ["p0", "p1"]
            $0.filter.must = [.with { $0.match = .with { $0.key = "group"; $0.value = .with { $0.keyword = "g7" } } }]
        })
        #expect(deleted.deleted == 52)
        let afterDelete = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "glosses"; $0.vector = Embeddings.base[7]; $0.limit = 10; $0.withPayload = true
            $0.filter.must = [.with { $0.match = .with { $0.key = "group"; $0.value = .with { $0.keyword = "g7" } } }]
        })
        #expect(afterDelete.results.isEmpty)
        let got = try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "glosses"; $0.ids = ["p0", "p2", "p7"]; $0.withPayload = true })
        #expect(got.points.map(\.id) == ["p2"])
        let self2 = try await client.call(VectorSearchMethods.search, .with { $0.collection = "glosses"; $0.vector = Embeddings.base[2]; $0.limit = 1 })
        #expect(self2.results.first?.point.id == "p2")
        #expect(abs((self2.results.first?.score ?? 0) - 1) < 1e-4)
        let list = try vectors.kb("vectors", "list")
        #expect(list.status == 0 && list.stdout.contains("glosses") && list.stdout.contains("4,948"), "\(list.stdout)\(list.stderr)")
        await client.close()
        await vectors.service.stop()
    }

    @Test("hybrid: BM25 over the text field fused with the vector score; keyword weight alone ranks by keywords")
    func hybrid() async throws {
        try #require(Embeddings.base.count == 6000)
        let vectors = try await VectorServiceUnderTest.start()
        let client = vectors.client()
        try await createCollection(client, "hybrid")
        try await upsert(client, "hybrid", 0..<3000)
        // A word that occurs in a few texts.
        let word = try #require(KeywordCounts.rareWord(in: Array(Embeddings.texts.prefix(3000))))
        let keywordOnly = try await client.call(VectorSearchMethods.search, .with {
            $0.collection = "hybrid"; $0.vector = Embeddings.queries[3]; $0.textQuery = word; $0.limit = 5; $0.withPayload = true
            $0.vectorWeight = .with { $0.value = 0 }; $0.keywordWeight = .with { $0.value = 1 }
        })
        #expect(!keywordOnly.results.isEmpty)
        #expect(keywordOnly.results.allSatisfy { $0.point.payload["text"]!.text.lowercased().contains(word) })
        let fused = try await client.call(VectorSearchMethods.search, .with { $0.collection = "hybrid"; $0.vector = Embeddings.queries[3]; $0.textQuery = word; $0.limit = 10 })
        #expect(fused.results.allSatisfy { abs($0.score - (0.7 * (($0.vectorScore + 1) / 2) + 0.3 * $0.keywordScore)) < 1e-3 }, "score = 0.7 vector + 0.3 keyword")
        #expect(zip(fused.results, fused.results.dropFirst()).allSatisfy { $0.score >= $1.score })
        #expect(fused.results.contains { $0.keywordScore > 0 }, "keyword matches are among the fused results")
        let noText = await rpcFailure { _ = try await client.call(VectorSearchMethods.search, .with { $0.collection = "knowledge_384"; $0.vector = Embeddings.queries[0]; $0.textQuery = "x" }) }
        #expect(noText == nil, "the default collections have the text field")
        let metrics = try #require(await httpGet("http://127.0.0.1:\(vectors.service.adminPort)/metrics")).body
        #expect(metrics.contains("knowledge_vector_search_latency_seconds_bucket{dimension=\"384\""), "the guide's latency histogram")
        #expect(metrics.contains("knowledge_vector_search_latency_seconds_count{dimension=\"384\"}"))
        await client.close()
        await vectors.service.stop()
    }

    @Test("a damaged graph: text searches answer from keywords (degraded), vector-only ones are UNAVAILABLE, health says so; rebuild fixes it")
    func degradedMode() async throws {
        try #require(Embeddings.base.count == 6000)
        let data = temporaryDirectory("vectors-degraded")
        var vectors = try await VectorServiceUnderTest.start(dataDirectory: data)
        var client = vectors.client()
        try await createCollection(client, "docs")
        try await upsert(client, "docs", 0..<2500)
        await client.close()
        #expect(await vectors.service.stop() == 0, "a clean stop writes the graph snapshot")
        let graph = data.appendingPathComponent("vectors/graphs/docs/index.hnsw")
        var bytes = try Data(contentsOf: graph)
        bytes[bytes.count / 3] ^= 0x5A
        try bytes.write(to: graph)

        vectors = try await VectorServiceUnderTest.start(dataDirectory: data)
        client = vectors.client()
        let word = try #require(KeywordCounts.rareWord(in: Array(Embeddings.texts.prefix(2500))))
        let degraded = try await client.call(VectorSearchMethods.search, .with { $0.collection = "docs"; $0.vector = Embeddings.queries[0]; $0.textQuery = word; $0.withPayload = true })
        #expect(degraded.degraded)
        #expect(!degraded.results.isEmpty && degraded.results.allSatisfy { $0.point.payload["text"]!.text.lowercased().contains(word) })
        let vectorOnly = await rpcFailure { _ = try await client.call(VectorSearchMethods.search, .with { $0.collection = "docs"; $0.vector = Embeddings.queries[0] }) }
        #expect(vectorOnly?.code == .unavailable && vectorOnly?.message.contains("text_query") == true)
        let health = try #require(await httpGet("http://127.0.0.1:\(vectors.service.adminPort)/health"))
        #expect(health.body.contains("\"status\":\"degraded\"") && health.body.contains("docs.problem"), "\(health.body)")
        // Writes still land while degraded, and the rebuild includes them.
        try await upsert(client, "docs", 2500..<2600)
        let rebuilt = try vectors.kb("vectors", "rebuild", "docs")
        #expect(rebuilt.status == 0 && rebuilt.stdout.contains("ready") && rebuilt.stdout.contains("2,600"), "\(rebuilt.stdout)\(rebuilt.stderr)")
        let normal = try await client.call(VectorSearchMethods.search, .with { $0.collection = "docs"; $0.vector = Embeddings.base[2550]; $0.limit = 1 })
        #expect(!normal.degraded && normal.results.first?.point.id == "p2550")
        await client.close()
        await vectors.service.stop()
    }

    @Test("kill -9 during upserts: every acknowledged point is there after the restart (graph snapshot + log replay)")
    func killDuringUpserts() async throws {
        try #require(Embeddings.base.count == 6000)
        let data = temporaryDirectory("vectors-kill")
        let first = try await VectorServiceUnderTest.start(dataDirectory: data, environment: ["KB_VECTOR_SNAPSHOT_EVERY": "700"])
        let setup = first.client()
        try await createCollection(setup, "crash")
        await setup.close()
        let acknowledged = Acknowledged()
        let writers = Task {
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        let client = first.client()
                        var index = writer * 1500
                        while !Task.isCancelled && index < (writer + 1) * 1500 {
                            let range = index..<min(index + 25, (writer + 1) * 1500)
                            do {
                                _ = try await client.call(VectorSearchMethods.upsertPoints, .with { $0.collection = "crash"; $0.points = range.map(Embeddings.point) })
                                acknowledged.add(range.map { "p\($0)" })
                            } catch {
                                break
                            }
                            index = range.upperBound
                        }
                        await client.close()
                    }
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while acknowledged.count < 1500 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        await first.service.stop(signal: SIGKILL)
        writers.cancel()
        await writers.value
        let ids = acknowledged.all
        #expect(ids.count >= 1500)

        let second = try await VectorServiceUnderTest.start(dataDirectory: data)
        #expect(first.service.log.contains("graph snapshot written"), "snapshots were taken during the writes")
        #expect(second.service.log.contains("\"collection loaded\""), "the restart loaded the graph snapshot and replayed the log: \(second.service.log)")
        let client = second.client()
        var found = 0
        for chunk in stride(from: 0, to: ids.count, by: 1000) {
            found += try await client.call(VectorSearchMethods.getPoints, .with { $0.collection = "crash"; $0.ids = Array(ids[chunk..<min(chunk + 1000, ids.count)]) }).points.count
        }
        #expect(found == ids.count, "\(ids.count - found) acknowledged points lost")
        // And the graph knows them: each finds itself.
        for id in ids.shuffled().prefix(30) {
            let index = Int(id.dropFirst())!
            let result = try await client.call(VectorSearchMethods.search, .with { $0.collection = "crash"; $0.vector = Embeddings.base[index]; $0.limit = 1; $0.ef = 64 })
            #expect(result.results.first?.point.id == id)
        }
        await client.close()
        await second.service.stop()
    }

    @Test("an int8-quantized collection answers like the float one")
    func quantizedCollection() async throws {
        try #require(Embeddings.base.count == 6000)
        let vectors = try await VectorServiceUnderTest.start()
        let client = vectors.client()
        _ = try await client.call(VectorSearchMethods.createCollection, .with {
            $0.config.name = "int8"; $0.config.dimension = 384; $0.config.int8Quantization = true; $0.config.textField = "text"
        })
        try await upsert(client, "int8", 0..<4000)
        var hits = 0
        for query in Embeddings.queries.prefix(50) {
            let approximate = try await client.call(VectorSearchMethods.search, .with { $0.collection = "int8"; $0.vector = query; $0.limit = 10; $0.ef = 64 })
            let exact = try await client.call(VectorSearchMethods.search, .with { $0.collection = "int8"; $0.vector = query; $0.limit = 10; $0.exact = true })
            hits += Set(approximate.results.map(\.point.id)).intersection(exact.results.map(\.point.id)).count
        }
        #expect(Double(hits) / 500 >= 0.95, "int8 recall \(Double(hits) / 500)")
        let info = try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "int8" })
        #expect(info.config.int8Quantization && info.pointCount == 4000)
        await client.close()
        await vectors.service.stop()
    }

    @Test("snapshot while serving, then restore: the snapshot's points and the same answers")
    func snapshotRestore() async throws {
        try #require(Embeddings.base.count == 6000)
        let vectors = try await VectorServiceUnderTest.start()
        let client = vectors.client()
        try await createCollection(client, "snap")
        try await upsert(client, "snap", 0..<3000)
        let target = vectors.backupDirectory.appendingPathComponent("snap-copy")
        let snapshot = try vectors.kb("vectors", "snapshot", "snap", "--path", "snap-copy")
        #expect(snapshot.status == 0 && snapshot.stdout.contains("3,000 points"), "\(snapshot.stdout)\(snapshot.stderr)")
        let before = try await client.call(VectorSearchMethods.search, .with { $0.collection = "snap"; $0.vector = Embeddings.queries[5]; $0.limit = 10; $0.exact = true })
        _ = try await client.call(VectorSearchMethods.deletePoints, .with { $0.collection = "snap"; $0.ids = before.results.map(\.point.id) })
        try await upsert(client, "snap", 3000..<3100)
        let restored = try vectors.kb("vectors", "restore", "snap", target.path)
        #expect(restored.status == 0 && restored.stdout.contains("3,000"), "\(restored.stdout)\(restored.stderr)")
        let after = try await client.call(VectorSearchMethods.search, .with { $0.collection = "snap"; $0.vector = Embeddings.queries[5]; $0.limit = 10; $0.exact = true })
        #expect(after.results.map(\.point.id) == before.results.map(\.point.id))
        let copy = try vectors.kb("vectors", "restore", "snap-copy", target.path)
        #expect(copy.status == 0)
        #expect(try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "snap-copy" }).pointCount == 3000)
        let junk = await rpcFailure { _ = try await client.call(VectorSearchMethods.restoreCollection, .with { $0.name = "x"; $0.path = "/nonexistent" }) }
        #expect(junk?.code == .invalidArgument)
        await client.close()
        await vectors.service.stop()
    }

    @Test("snapshots and restores stay inside KB_BACKUP_DIR: an outside path, '..', a dangling link and a linked folder are refused, nothing written or read there; a relative snapshot lands inside and restores")
    func snapshotsStayInsideTheRoot() async throws {
        let fixture = try BackupRootFixture()
        let vectors = try await VectorServiceUnderTest.start(environment: ["KB_BACKUP_DIR": fixture.root.path])
        let client = vectors.client()
        try await createCollection(client, "rooted", dimension: 4)
        _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = "rooted"
            $0.points = (0..<10).map { index in .with { $0.id = "p\(index)"; $0.vector = [Float(index), 1, 2, 3] } }
        })
        for path in fixture.refusedPaths {
            let failure = await rpcFailure { _ = try await client.call(VectorSearchMethods.snapshotCollection, .with { $0.name = "rooted"; $0.path = path }) }
            #expect(failure?.code == .invalidArgument && failure?.field == "path", "snapshot to \(path): \(String(describing: failure))")
        }
        #expect(fixture.damage().isEmpty, "\(fixture.damage())")

        // A good snapshot made outside by hand, and one reached through a link: never read.
        let made = try await client.call(VectorSearchMethods.snapshotCollection, .with { $0.name = "rooted"; $0.path = "weekly/rooted-1" })
        #expect(made.path == fixture.root.appendingPathComponent("weekly/rooted-1").path && made.pointCount == 10)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: made.path), to: fixture.outside.appendingPathComponent("copy"))
        try FileManager.default.createSymbolicLink(atPath: fixture.root.appendingPathComponent("weekly/linked-copy").path, withDestinationPath: fixture.outside.appendingPathComponent("copy").path)
        for path in [fixture.outside.appendingPathComponent("copy").path, "linked/copy", "weekly/linked-copy", "../\(fixture.outside.lastPathComponent)/copy"] {
            let failure = await rpcFailure { _ = try await client.call(VectorSearchMethods.restoreCollection, .with { $0.name = "stolen"; $0.path = path }) }
            #expect(failure?.code == .invalidArgument && failure?.field == "path", "restore from \(path): \(String(describing: failure))")
        }
        #expect(await rpcFailure { _ = try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "stolen" }) } != nil)

        let restored = try vectors.kb("vectors", "restore", "rooted-again", "weekly/rooted-1")
        #expect(restored.status == 0, "\(restored.stdout)\(restored.stderr)")
        #expect(try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = "rooted-again" }).pointCount == 10)
        await client.close()
        await vectors.service.stop()
    }
}

enum KeywordCounts {
    /// A word of 6+ letters found in 3 to 10 of `texts`.
    static func rareWord(in texts: [String]) -> String? {
        var counts: [String: Int] = [:]
        for text in texts {
            for word in Set(text.lowercased().split { !$0.isLetter }.map(String.init)) where word.count >= 6 { counts[word, default: 0] += 1 }
        }
        return counts.filter { (3...10).contains($0.value) }.keys.sorted().first
    }
}

final class Acknowledged: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [String] = []
    func add(_ more: [String]) { lock.withLock { ids += more } }
    var count: Int { lock.withLock { ids.count } }
    var all: [String] { lock.withLock { ids } }
}
