// vector-benchmark: our HNSW engine in-process beside faiss, hnswlib and usearch on the shared
// 384-dim sentence embeddings (WordNet glosses, all-MiniLM-L6-v2).
//
//   swift build -c release && .build/release/vector-benchmark [--data DIR] [--m 16] [--ef-construction 100] [--queries 1000] [--no-references]
//   .build/release/vector-benchmark --rpc-service 127.0.0.1:PORT [--base N] [--queries N] [--ef 64]   (qdrant_bench.py's RPC row)
//
// Prints build time (1 and 2 threads), memory, and for a sweep of ef: QPS with 1 and 2 threads and
// recall@10 against the file's exact ground truth, then brute-force exact search as the floor.
// In the same run, `references.py` builds faiss HNSWFlat, hnswlib and usearch with the same m and
// ef_construction on the same vectors and prints the same sweep (pip install faiss-cpu usearch hnswlib).
import BenchmarkSupport
import Foundation
import KBProto
import KBRPC
import VectorIndex

let arguments = BenchmarkArguments()
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let dataDirectory = URL(fileURLWithPath: arguments.string("--data") ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/vectors/wordnet-minilm-384").path)
let m = arguments.integer("--m", default: 16)
let efConstruction = arguments.integer("--ef-construction", default: 100)
let queryLimit = arguments.integer("--queries", default: 1000)
let sweep = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
let runReferences = !arguments.flag("--no-references")

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (Int(fields[1]) ?? 0) * 4096
}

let (dimension, base) = try VectorFiles.readFvecs(dataDirectory.appendingPathComponent("base.fvecs"))
let queries = Array(try VectorFiles.readFvecs(dataDirectory.appendingPathComponent("queries.fvecs")).vectors.prefix(queryLimit))
let truth = try VectorFiles.readIvecs(dataDirectory.appendingPathComponent("groundtruth.ivecs"))
if let address = arguments.string("--rpc-service") {
    try await runAgainstRunningService(address, arguments: arguments, dimension: dimension, base: base, queries: queries, truth: truth)
    exit(0)
}
do {
    // The kernel alone: dot products over the base vectors.
    let flat = base.flatMap { $0 }
    var checksum: Float = 0
    let start = ContinuousClock.now
    flat.withUnsafeBufferPointer { buffer in
        let pointer = buffer.baseAddress!
        for round in 0..<10 {
            for row in 0..<base.count { checksum += Kernels.dot(pointer + row * dimension, pointer + (round % base.count) * dimension, dimension) }
        }
    }
    let nanos = seconds(ContinuousClock.now - start) / Double(base.count * 10) * 1e9
    print(String(format: "kernel: %.1f ns per %d-dim dot product (AVX2: %@, checksum %.1f)", nanos, dimension, Kernels.usesAVX2 ? "yes" : "no", checksum))
}
print("data: \(base.count) base vectors, \(queries.count) queries, \(dimension) dimensions (\(dataDirectory.path))")

func recall(_ results: [[Neighbor]]) -> Double {
    var hits = 0
    for (index, result) in results.enumerated() {
        let expected = Set(truth[index].prefix(10).map { UInt32($0) })
        hits += result.prefix(10).filter { expected.contains($0.id) }.count
    }
    return Double(hits) / Double(results.count * 10)
}

/// Runs `body` for every query split over `threads` threads; returns queries/s and the results.
func timed(threads: Int, _ body: @escaping @Sendable (Int) -> [Neighbor]) -> (qps: Double, results: [[Neighbor]]) {
    let results = UnsafeMutableBufferPointer<[Neighbor]>.allocate(capacity: queries.count)
    results.initialize(repeating: [])
    defer { results.deallocate() }
    let start = ContinuousClock.now
    let resultsBox = UncheckedBox(results)
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
        var index = thread
        while index < queries.count {
            resultsBox.value[index] = body(index)
            index += threads
        }
    }
    let elapsed = seconds(ContinuousClock.now - start)
    return (Double(queries.count) / elapsed, Array(results))
}

final class UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

// MARK: Build

var buildSeconds: [Int: Double] = [:]
var index: HNSWIndex!
let memoryBefore = residentBytes()
for threads in [1, 2] {
    let built = HNSWIndex(dimension: dimension, metric: .cosine, parameters: HNSWParameters(m: m, efConstruction: efConstruction), capacity: base.count)
    let start = ContinuousClock.now
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
        var item = thread
        while item < base.count {
            built.add(base[item])
            item += threads
        }
    }
    buildSeconds[threads] = seconds(ContinuousClock.now - start)
    print("built with \(threads) thread(s) in \(String(format: "%.2f", buildSeconds[threads]!)) s")
    if threads == 1 { index = built }
}
// Node ids are insertion order only for the single-threaded build, which the queries use.
let memory = index.memoryBytes

// MARK: Sweep

struct Row { var ef: Int; var recall: Double; var qps1: Double; var qps2: Double }
var rows: [Row] = []
let engine = index!
for ef in sweep {
    let one = timed(threads: 1) { engine.search(queries[$0], k: 10, ef: ef) }
    let two = timed(threads: 2) { engine.search(queries[$0], k: 10, ef: ef) }
    rows.append(Row(ef: ef, recall: recall(one.results), qps1: one.qps, qps2: two.qps))
    print(String(format: "ours ef=%4d recall@10 %.4f  QPS 1 thread %8.0f  2 threads %8.0f", ef, rows.last!.recall, one.qps, two.qps))
}
let exact = timed(threads: 1) { engine.exactSearch(queries[$0], k: 10) }
// The same graph with int8 scalar quantization: the walk on codes, the candidates rescored.
engine.quantize()
var quantizedRows: [Row] = []
for ef in sweep {
    let one = timed(threads: 1) { engine.search(queries[$0], k: 10, ef: ef) }
    let two = timed(threads: 2) { engine.search(queries[$0], k: 10, ef: ef) }
    quantizedRows.append(Row(ef: ef, recall: recall(one.results), qps1: one.qps, qps2: two.qps))
    print(String(format: "ours int8 ef=%4d recall@10 %.4f  QPS 1 thread %8.0f  2 threads %8.0f", ef, quantizedRows.last!.recall, one.qps, two.qps))
}
let exactRecall = recall(exact.results)
print(String(format: "brute force: recall@10 %.4f  QPS %.0f", exactRecall, exact.qps))

// MARK: References

var references: [[String: Any]] = []
if runReferences {
    let script = packageRoot.appendingPathComponent("Benchmarks/VectorBenchmark/references.py")
    let python = try runToEnd("python3", [script.path, dataDirectory.path, "\(m)", "\(efConstruction)", "\(queries.count)", sweep.map(String.init).joined(separator: ",")])
    FileHandle.standardError.write(Data(python.standardError.utf8))
    for line in python.standardOutput.split(separator: "\n") {
        if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { references.append(object) }
    }
}

// MARK: Through the service, over loopback RPC


func measureService() async throws -> ServiceFigures {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("vector-benchmark-\(getpid())")
    defer { try? FileManager.default.removeItem(at: work) }
    let port = freePort()
    let service = try startProcess(siblingExecutable("vector-search"), environment: [
        "KB_DATA_DIR": work.path, "KB_VECTOR_SEARCH_PORT": "\(port)", "KB_VECTOR_SEARCH_ADMIN_PORT": "\(freePort())", "KB_VECTOR_QDRANT_PORT": "0", "KB_LOG_LEVEL": "warning",
    ])
    defer { service.terminate(); service.waitUntilExit() }
    let client = benchmarkClient(host: "127.0.0.1", port: port)
    defer { Task { await client.close() } }
    try await waitUntilReady("vector-search", within: .seconds(60)) {
        (try? await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))) != nil
    }
    return try await measureOverRPC(client, collection: "bench", dimension: dimension, m: m, efConstruction: efConstruction, base: base[...], queries: queries, efs: [16, 32, 64, 128]) { answers in
        recall(answers.map { $0.map { Neighbor(distance: 0, id: $0) } })
    }
}
print("through the service: upserting \(base.count) points over RPC, then searching with one client…")
let serviceFigures = try await measureService()

// MARK: Table

print("""

vector-benchmark: \(base.count) × \(dimension) (cosine), m=\(m), ef_construction=\(efConstruction), \(queries.count) queries, \(ProcessInfo.processInfo.activeProcessorCount) cores

| engine | build 1 thread | build 2 threads | memory |
|---|---|---|---|
| ours (Swift) | \(String(format: "%.2f s", buildSeconds[1]!)) | \(String(format: "%.2f s", buildSeconds[2]!)) | \(memory / 1_048_576) MiB index (process grew \((residentBytes() - memoryBefore) / 1_048_576) MiB for two builds) |
""")
for reference in references where reference["kind"] as? String == "build" {
    print("| \(reference["engine"]!) | \(String(format: "%.2f s", reference["build1"] as? Double ?? 0)) | \(String(format: "%.2f s", reference["build2"] as? Double ?? 0)) | \((reference["memory"] as? Int ?? 0) / 1_048_576) MiB (the engine's own structures) |")
}
print("\n| ef | ours recall@10 | ours QPS 1t | ours QPS 2t | ours int8 recall | QPS 1t | QPS 2t |" + references.filter { $0["kind"] as? String == "build" }.map { " \($0["engine"]!) recall | QPS 1t | QPS 2t |" }.joined())
print("|---|---|---|---|---|---|---|" + String(repeating: "---|---|---|", count: references.filter { $0["kind"] as? String == "build" }.count))
for row in rows {
    let q = quantizedRows.first { $0.ef == row.ef }!
    var line = String(format: "| %d | %.4f | %.0f | %.0f | %.4f | %.0f | %.0f |", row.ef, row.recall, row.qps1, row.qps2, q.recall, q.qps1, q.qps2)
    for reference in references where reference["kind"] as? String == "build" {
        let engineName = reference["engine"] as! String
        if let point = references.first(where: { $0["kind"] as? String == "search" && $0["engine"] as? String == engineName && $0["ef"] as? Int == row.ef }) {
            line += String(format: " %.4f | %.0f | %.0f |", point["recall"] as? Double ?? 0, point["qps1"] as? Double ?? 0, point["qps2"] as? Double ?? 0)
        } else {
            line += " - | - | - |"
        }
    }
    print(line)
}
print(String(format: "\nbrute force (ours, exact scan): recall@10 %.4f, %.0f QPS (1 thread)", exactRecall, exact.qps))
for reference in references where reference["kind"] as? String == "exact" {
    print(String(format: "brute force (%@): recall@10 %.4f, %.0f QPS (1 thread)", reference["engine"] as! String, reference["recall"] as? Double ?? 0, reference["qps1"] as? Double ?? 0))
}

/// At recall ≥ 0.95, the best 1-thread QPS of each engine.
func bestAt95(_ points: [(recall: Double, qps: Double)]) -> Double? { points.filter { $0.recall >= 0.95 }.map(\.qps).max() }
var summary = "\nAt recall@10 ≥ 0.95, best QPS with 1 thread: ours \(bestAt95(rows.map { ($0.recall, $0.qps1) }).map { String(format: "%.0f", $0) } ?? "not reached"), ours int8 \(bestAt95(quantizedRows.map { ($0.recall, $0.qps1) }).map { String(format: "%.0f", $0) } ?? "not reached")"
for reference in references where reference["kind"] as? String == "build" {
    let name = reference["engine"] as! String
    let points = references.filter { $0["kind"] as? String == "search" && $0["engine"] as? String == name }.map { ($0["recall"] as? Double ?? 0, $0["qps1"] as? Double ?? 0) }
    summary += ", \(name) \(bestAt95(points).map { String(format: "%.0f", $0) } ?? "not reached")"
}
print(summary)

print("\nThrough vector-search over loopback RPC, one client (upserts: \(String(format: "%.0f", serviceFigures.upsertRate)) points/s, 1000 per call, durable):")
print("| ef | recall@10 | QPS | p50 | p99 |\n|---|---|---|---|---|")
for row in serviceFigures.rows {
    print(String(format: "| %d | %.4f | %.0f | %.3f ms | %.3f ms |", row.ef, row.recall ?? 0, row.qps, row.p50 * 1000, row.p99 * 1000))
}
