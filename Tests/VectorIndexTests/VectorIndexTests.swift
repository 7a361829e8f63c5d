import Foundation
import KBTestSupport
import Testing
import VectorIndex

/// The shared embeddings (WordNet glosses, all-MiniLM-L6-v2, 384 dimensions) and their exact
/// ground truth, read from `../shared/data/vectors/` (or `KB_VECTOR_DATA`).
enum SharedVectors {
    struct Data: Sendable {
        let dimension: Int
        let base: [[Float]]
        let queries: [[Float]]
        let truth: [[Int32]]
    }

    static let directory: URL = {
        if let explicit = ProcessInfo.processInfo.environment["KB_VECTOR_DATA"] { return URL(fileURLWithPath: explicit) }
        let beside = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/vectors/wordnet-minilm-384")
        if FileManager.default.fileExists(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: "/work/shared/data/vectors/wordnet-minilm-384")
    }()

    static let data: Data? = {
        guard let base = try? VectorFiles.readFvecs(directory.appendingPathComponent("base.fvecs")),
              let queries = try? VectorFiles.readFvecs(directory.appendingPathComponent("queries.fvecs")),
              let truth = try? VectorFiles.readIvecs(directory.appendingPathComponent("groundtruth.ivecs")) else { return nil }
        return Data(dimension: base.dimension, base: base.vectors, queries: queries.vectors, truth: truth)
    }()

    /// The full base built once (2 threads), node id = base index.
    static let index: HNSWIndex? = {
        guard let data else { return nil }
        let index = HNSWIndex(dimension: data.dimension, metric: .cosine, parameters: HNSWParameters(m: 16, efConstruction: 100), capacity: data.base.count)
        // Inserted in order from one thread, so node id = index in the base file (the ground truth's ids).
        for vector in data.base { index.add(vector) }
        return index
    }()
}

func recallAt10(_ found: [[Neighbor]], _ truth: [[UInt32]]) -> Double {
    var hits = 0
    for (result, expected) in zip(found, truth) {
        let wanted = Set(expected.prefix(10))
        hits += result.prefix(10).filter { wanted.contains($0.id) }.count
    }
    return Double(hits) / Double(found.count * 10)
}

@Suite("HNSW engine on the shared embeddings", .serialized)
struct VectorIndexTests {
    @Test("recall@10 at ef=64 is at least 0.95 against the file's exact ground truth; exact search is exact")
    func recallFloor() throws {
        let data = try #require(SharedVectors.data, "the shared vectors are missing at \(SharedVectors.directory.path)")
        let index = try #require(SharedVectors.index)
        #expect(index.count == data.base.count)
        let queries = Array(data.queries.prefix(300))
        let truth = data.truth.prefix(300).map { $0.map { UInt32($0) } }
        let found = queries.map { index.search($0, k: 10, ef: 64) }
        let recall = recallAt10(found, truth)
        #expect(recall >= 0.95, "recall@10 \(recall)")
        #expect(found.allSatisfy { $0.count == 10 && zip($0, $0.dropFirst()).allSatisfy { $0.distance <= $1.distance } })
        let exact = queries.prefix(40).map { index.exactSearch($0, k: 10) }
        #expect(recallAt10(exact, Array(truth.prefix(40))) == 1.0)
        // A lower ef explores less: recall must not be better than at 64 by chance of a bug.
        let low = recallAt10(queries.map { index.search($0, k: 10, ef: 10) }, truth)
        #expect(low < recall)
    }

    @Test("a filter keeping 1% of the points still returns k results, all matching, near the exact ones")
    func selectiveFilter() throws {
        let data = try #require(SharedVectors.data)
        let index = try #require(SharedVectors.index)
        let keep: @Sendable (UInt32) -> Bool = { $0 % 100 == 7 }
        var hits = 0, total = 0
        for query in data.queries.prefix(50) {
            let found = index.search(query, k: 10, ef: 64, filter: keep)
            #expect(found.count == 10)
            #expect(found.allSatisfy { keep($0.id) })
            let exact = index.exactSearch(query, k: 10, filter: keep)
            #expect(exact.allSatisfy { keep($0.id) })
            let among = index.exactSearch(query, k: 10, among: (0..<UInt32(data.base.count)).filter(keep))
            #expect(among.map(\.id) == exact.map(\.id))
            hits += Set(found.map(\.id)).intersection(exact.map(\.id)).count
            total += 10
        }
        #expect(Double(hits) / Double(total) >= 0.9, "filtered recall \(Double(hits) / Double(total))")
    }

    @Test("deletes: tombstoned points are never returned; repair relinks without a rebuild and frees the slots")
    func deletesAndRepair() throws {
        let data = try #require(SharedVectors.data)
        let base = Array(data.base.prefix(8000))
        let index = HNSWIndex(dimension: data.dimension, metric: .cosine, parameters: HNSWParameters(m: 16, efConstruction: 100))
        for vector in base { index.add(vector) }
        var removed = Set<UInt32>()
        for id in stride(from: UInt32(0), to: UInt32(base.count), by: 4) {
            #expect(index.remove(id))
            removed.insert(id)
        }
        #expect(!index.remove(0), "a second delete is refused")
        #expect(index.count == base.count - removed.count)
        #expect(index.tombstones == removed.count)
        func recall() -> Double {
            var hits = 0
            for query in data.queries.prefix(100) {
                let found = index.search(query, k: 10, ef: 64)
                #expect(found.allSatisfy { !removed.contains($0.id) })
                let exact = Set(index.exactSearch(query, k: 10).map(\.id))
                hits += found.filter { exact.contains($0.id) }.count
            }
            return Double(hits) / 1000
        }
        #expect(recall() >= 0.9)
        #expect(index.repair() == removed.count)
        #expect(index.tombstones == 0)
        #expect(index.count == base.count - removed.count)
        #expect(recall() >= 0.9, "after repair")
        // New points reuse the freed slots.
        let reused = (0..<100).map { index.add(data.base[8000 + $0]) }
        #expect(reused.allSatisfy { removed.contains($0) })
        #expect(index.slots == base.count)
        let found = index.search(data.base[8000], k: 1, ef: 64)
        #expect(found.first?.id == reused[0], "a re-added point finds itself")
    }

    @Test("searches run while other threads insert: no crash, every result valid, recall holds")
    func concurrentSearchDuringInserts() async throws {
        let data = try #require(SharedVectors.data)
        let base = Array(data.base.prefix(12000))
        let index = HNSWIndex(dimension: data.dimension, metric: .cosine, parameters: HNSWParameters(m: 16, efConstruction: 100), capacity: 64)
        for vector in base.prefix(2000) { index.add(vector) }
        let searched = await withTaskGroup(of: Int.self) { group in
            group.addTask {
                for vector in base[2000...] { index.add(vector) }
                return 0
            }
            group.addTask {
                var rounds = 0
                while index.slots < base.count {
                    for query in data.queries.prefix(20) {
                        let found = index.search(query, k: 10, ef: 32)
                        if found.contains(where: { Int($0.id) >= index.slots }) { return -1 }
                    }
                    rounds += 1
                }
                return rounds
            }
            return await group.reduce(0) { $0 + $1 }
        }
        #expect(searched > 0, "searches ran during the inserts")
        #expect(index.count == base.count)
        var hits = 0
        for query in data.queries.prefix(100) {
            let exact = Set(index.exactSearch(query, k: 10).map(\.id))
            hits += index.search(query, k: 10, ef: 64).filter { exact.contains($0.id) }.count
        }
        #expect(Double(hits) / 1000 >= 0.95)
    }

    @Test("euclidean and dot product on random vectors agree with exact search")
    func otherMetrics() {
        var generator = SystemRandomNumberGenerator()
        let vectors = (0..<3000).map { _ in (0..<37).map { _ in Float.random(in: -1...1, using: &generator) } }
        for metric in [Metric.euclidean, .dot] {
            let index = HNSWIndex(dimension: 37, metric: metric, parameters: HNSWParameters(m: 12, efConstruction: 100))
            for vector in vectors { index.add(vector) }
            var hits = 0
            for query in vectors.prefix(50) {
                let exact = index.exactSearch(query, k: 10)
                let found = index.search(query, k: 10, ef: 128)
                hits += Set(found.map(\.id)).intersection(exact.map(\.id)).count
            }
            #expect(Double(hits) / 500 >= 0.9, "\(metric): \(Double(hits) / 500)")
            if metric == .euclidean {
                #expect(index.search(vectors[5], k: 1, ef: 32).first.map { metric.score(distance: $0.distance) } == 0)
            }
        }
    }

    @Test("a snapshot reads back into the same graph; damaged files are refused")
    func snapshotRoundTrip() throws {
        let data = try #require(SharedVectors.data)
        let index = HNSWIndex(dimension: data.dimension, metric: .cosine, parameters: HNSWParameters(m: 16, efConstruction: 64))
        for vector in data.base.prefix(3000) { index.add(vector) }
        index.remove(17)
        index.remove(18)
        index.repair()
        index.remove(19)
        let file = temporaryDirectory("hnsw").appendingPathComponent("index.hnsw")
        try index.write(to: file)
        let loaded = try HNSWIndex.read(from: file)
        #expect(loaded.count == index.count && loaded.tombstones == 1 && loaded.slots == index.slots)
        for query in data.queries.prefix(30) {
            #expect(loaded.search(query, k: 10, ef: 50).map(\.id) == index.search(query, k: 10, ef: 50).map(\.id))
        }
        let reused = loaded.add(data.base[5000])
        #expect(reused == 17 || reused == 18, "the freed slots survive the snapshot (got \(reused))")
        #expect(loaded.slots == index.slots)

        var bytes = try Foundation.Data(contentsOf: file)
        bytes[bytes.count / 2] ^= 0xFF
        let damaged = file.deletingLastPathComponent().appendingPathComponent("damaged.hnsw")
        try bytes.write(to: damaged)
        #expect(throws: HNSWIndex.SnapshotError.self) { try HNSWIndex.read(from: damaged) }
        try bytes.prefix(100).write(to: damaged)
        #expect(throws: HNSWIndex.SnapshotError.self) { try HNSWIndex.read(from: damaged) }
    }

    @Test("int8 quantization: the walk on codes with float rescoring keeps recall; it survives a snapshot")
    func quantization() throws {
        let data = try #require(SharedVectors.data)
        let index = HNSWIndex(dimension: data.dimension, metric: .cosine, parameters: HNSWParameters(m: 16, efConstruction: 100))
        for vector in data.base.prefix(10000) { index.add(vector) }
        let queries = Array(data.queries.prefix(100))
        let truth = queries.map { index.exactSearch($0, k: 10).map(\.id) }
        let floats = recallAt10(queries.map { index.search($0, k: 10, ef: 64) }, truth)
        #expect(!index.isQuantized)
        #expect(index.quantize())
        #expect(index.isQuantized)
        let quantized = queries.map { index.search($0, k: 10, ef: 64) }
        let recall = recallAt10(quantized, truth)
        #expect(recall >= 0.95 && recall >= floats - 0.02, "int8 recall \(recall), float \(floats)")
        // Scores are the rescored float distances, not the approximate ones.
        for (query, result) in zip(queries.prefix(5), quantized) {
            let exact = index.exactSearch(query, k: 1)[0]
            if result[0].id == exact.id { #expect(abs(result[0].distance - exact.distance) < 1e-5) }
        }
        // New points are encoded as they come.
        let added = index.add(data.base[20000])
        #expect(index.search(data.base[20000], k: 1, ef: 32).first?.id == added)
        let file = temporaryDirectory("hnsw-int8").appendingPathComponent("index.hnsw")
        try index.write(to: file)
        let loaded = try HNSWIndex.read(from: file)
        #expect(loaded.isQuantized)
        for query in queries.prefix(20) {
            #expect(loaded.search(query, k: 10, ef: 64).map(\.id) == index.search(query, k: 10, ef: 64).map(\.id))
        }
    }
}
