// embedding-benchmark: the Swift engine (KBEmbeddings) beside sentence-transformers (torch, CPU) and
// ONNX Runtime on all-MiniLM-L6-v2, in one run, on the WordNet glosses of the shared data set.
//
//   swift build -c release --scratch-path .build-release --product embedding-benchmark
//   .build-release/release/embedding-benchmark [--data DIR] [--texts 4096] [--runs 3] [--latency-texts 500] [--no-references]
//
// 1. Correctness: every gloss of base_texts.txt (40k) embedded and compared with the published
//    vectors in base.fvecs (cosine ≥ 0.9999 on all).
// 2. Throughput (texts/s) at 1 and 2 threads, batch 32 and 128, over the first --texts glosses;
//    single-text latency p50/p95 over --latency-texts glosses; medians of --runs runs.
// 3. GFLOPS: the engine's whole forward pass, and OpenBLAS's own sgemm on the same matrix shapes.
// references.py measures sentence-transformers and ONNX Runtime (exported from torch at benchmark
// time) the same way and prints JSON lines; the table puts them side by side.
import BenchmarkSupport
import Foundation
import KBEmbeddings
import VectorIndex

let arguments = BenchmarkArguments()
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let dataDirectory = URL(fileURLWithPath: arguments.string("--data") ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/vectors/wordnet-minilm-384").path)
let sampleCount = arguments.integer("--texts", default: 4096)
let runs = arguments.integer("--runs", default: 3)
let latencyCount = arguments.integer("--latency-texts", default: 500)
let runReferences = !arguments.flag("--no-references")
let skipCorrectness = arguments.flag("--no-correctness")

let textsFile = dataDirectory.appendingPathComponent("base_texts.txt")
let allTexts = try String(contentsOf: textsFile, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
let sample = Array(allTexts.prefix(sampleCount))
let latencySample = Array(allTexts.prefix(latencyCount))

let one = try TextEmbedder(threads: 1)
let two = try TextEmbedder(threads: 2)
print("engine: \(two.backendDescription)")
print("data: \(allTexts.count) glosses (\(dataDirectory.path)); throughput over \(sample.count), latency over \(latencySample.count), \(runs) runs, \(ProcessInfo.processInfo.activeProcessorCount) cores")

// MARK: Correctness on every gloss

var correctness = "skipped"
if !skipCorrectness {
    let (dimension, published) = try VectorFiles.readFvecs(dataDirectory.appendingPathComponent("base.fvecs"))
    precondition(dimension == 384 && published.count == allTexts.count, "base.fvecs has \(published.count) × \(dimension), base_texts.txt \(allTexts.count) lines")
    var worst = 1.0, sum = 0.0, below = 0
    let start = ContinuousClock.now
    for first in stride(from: 0, to: allTexts.count, by: 512) {
        let range = first..<min(first + 512, allTexts.count)
        for (offset, vector) in two.embed(Array(allTexts[range])).enumerated() {
            let reference = published[range.lowerBound + offset]
            var dot = 0.0, aa = 0.0, bb = 0.0
            for index in 0..<384 {
                dot += Double(vector[index]) * Double(reference[index])
                aa += Double(vector[index]) * Double(vector[index])
                bb += Double(reference[index]) * Double(reference[index])
            }
            let value = dot / (aa * bb).squareRoot()
            worst = min(worst, value)
            sum += value
            if value < 0.9999 { below += 1 }
        }
    }
    correctness = String(format: "%d glosses: min cosine %.6f, mean %.7f, %d below 0.9999 (%.1f s at 2 threads)",
                         allTexts.count, worst, sum / Double(allTexts.count), below, seconds(ContinuousClock.now - start))
    print("correctness: \(correctness)")
}

// MARK: Throughput and latency

let sampleIDs = sample.map(two.tokenizer.tokenIDs)
let averageTokens = Double(sampleIDs.reduce(0) { $0 + $1.count }) / Double(sampleIDs.count)

/// FLOPs of one forward pass over these sequences (matrix products and attention).
func forwardFLOPs(_ sequences: [[Int32]]) -> Double {
    let h = 384.0, inner = 1536.0, layers = 6.0
    var total = 0.0
    for sequence in sequences {
        let n = Double(sequence.count)
        total += layers * (2 * n * h * (3 * h + h + 2 * inner) + 4 * n * n * h)
    }
    return total
}
let sampleFLOPs = forwardFLOPs(sampleIDs)

struct Row { var label: String; var textsPerSecond: Double; var gflops: Double }
var rows: [Row] = []
for (threads, engine) in [(1, one), (2, two)] {
    for batch in [32, 128] {
        _ = engine.embed(Array(sample.prefix(batch)))
        var rates: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            for first in stride(from: 0, to: sample.count, by: batch) { _ = engine.embed(Array(sample[first..<min(first + batch, sample.count)])) }
            rates.append(Double(sample.count) / seconds(ContinuousClock.now - start))
        }
        let rate = median(rates)
        rows.append(Row(label: "\(threads) thread\(threads == 1 ? "" : "s"), batch \(batch)", textsPerSecond: rate, gflops: sampleFLOPs / Double(sample.count) * rate / 1e9))
        print(String(format: "ours %@: %.0f texts/s (%.1f GFLOPS over the whole forward pass)", rows.last!.label, rate, rows.last!.gflops))
    }
}
var latencies: [Int: (p50: Double, p95: Double)] = [:]
for (threads, engine) in [(1, one), (2, two)] {
    var p50s: [Double] = [], p95s: [Double] = []
    for _ in 0..<runs {
        var samples: [Double] = []
        for text in latencySample {
            let start = ContinuousClock.now
            _ = engine.embed(text)
            samples.append(seconds(ContinuousClock.now - start) * 1000)
        }
        samples.sort()
        p50s.append(percentile(samples, 0.5))
        p95s.append(percentile(samples, 0.95))
    }
    latencies[threads] = (median(p50s), median(p95s))
    print(String(format: "ours single text, %d thread(s): p50 %.2f ms, p95 %.2f ms", threads, latencies[threads]!.p50, latencies[threads]!.p95))
}

// MARK: OpenBLAS's own sgemm on the engine's shapes

let blas = try OpenBLAS.shared()
let batchTokens = Int((averageTokens * 128).rounded())
let shapes = [(name: "QKV", n: 1152, k: 384), (name: "attention out", n: 384, k: 384), (name: "FFN in", n: 1536, k: 384), (name: "FFN out", n: 384, k: 1536)]
var sgemmRows: [String] = []
for threads in [1, 2] {
    blas.threads = threads
    var flops = 0.0, time = 0.0
    for shape in shapes {
        let m = batchTokens
        let a = [Float](repeating: 0.01, count: m * shape.k), b = [Float](repeating: 0.02, count: shape.n * shape.k)
        var c = [Float](repeating: 0, count: m * shape.n)
        var rates: [Double] = []
        for _ in 0..<max(runs, 3) {
            let start = ContinuousClock.now
            for _ in 0..<10 {
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    blas.multiplyTransposed(m: m, n: shape.n, k: shape.k, a: pa.baseAddress!, lda: shape.k, b: pb.baseAddress!, ldb: shape.k, c: pc.baseAddress!, ldc: shape.n)
                } } }
            }
            rates.append(seconds(ContinuousClock.now - start) / 10)
        }
        let elapsed = median(rates)
        flops += 2 * Double(m * shape.n * shape.k)
        time += elapsed
        sgemmRows.append(String(format: "%d thread(s) %@ %d×%d×%d: %.1f GFLOPS", threads, shape.name, m, shape.n, shape.k, 2 * Double(m * shape.n * shape.k) / elapsed / 1e9))
    }
    sgemmRows.append(String(format: "%d thread(s) all four shapes: %.1f GFLOPS", threads, flops / time / 1e9))
}
blas.threads = 1
for line in sgemmRows { print("sgemm \(line)") }

// MARK: References

var references: [[String: Any]] = []
if runReferences {
    let script = packageRoot.appendingPathComponent("Benchmarks/EmbeddingBenchmark/references.py")
    print("references: running \(script.lastPathComponent) (sentence-transformers, ONNX Runtime)…")
    let python = try runToEnd("python3", [script.path, textsFile.path, "\(sample.count)", "\(latencySample.count)", "\(runs)"])
    FileHandle.standardError.write(Data(python.standardError.utf8))
    for line in python.standardOutput.split(separator: "\n") {
        if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { references.append(object) }
    }
}

// MARK: Table

@MainActor func reference(_ engine: String, _ kind: String, threads: Int, batch: Int = 0) -> [String: Any]? {
    references.first { $0["engine"] as? String == engine && $0["kind"] as? String == kind && $0["threads"] as? Int == threads && ($0["batch"] as? Int ?? 0) == batch }
}
func cell(_ value: Double?, _ format: String = "%.0f") -> String { value.map { String(format: format, $0) } ?? "-" }

var table = """

embedding-benchmark: all-MiniLM-L6-v2, \(sample.count) WordNet glosses (mean \(String(format: "%.1f", averageTokens)) tokens), \(runs) runs (medians), \(ProcessInfo.processInfo.activeProcessorCount) cores
engine: \(two.backendDescription)
correctness: \(correctness)

| engine | 1 thread b32 | 1 thread b128 | 2 threads b32 | 2 threads b128 | single p50 1t / 2t | single p95 1t / 2t |
|---|---|---|---|---|---|---|
| ours (Swift, float) | \(cell(rows[0].textsPerSecond)) | \(cell(rows[1].textsPerSecond)) | \(cell(rows[2].textsPerSecond)) | \(cell(rows[3].textsPerSecond)) | \(String(format: "%.2f / %.2f ms", latencies[1]!.p50, latencies[2]!.p50)) | \(String(format: "%.2f / %.2f ms", latencies[1]!.p95, latencies[2]!.p95)) |

"""
for engine in ["sentence-transformers", "onnxruntime"] {
    if let missing = references.first(where: { $0["engine"] as? String == engine && $0["kind"] as? String == "missing" }) {
        table += "| \(engine) | not run: \(missing["error"] ?? "") | | | | | |\n"
        continue
    }
    let throughput = [(1, 32), (1, 128), (2, 32), (2, 128)].map { cell(reference(engine, "throughput", threads: $0.0, batch: $0.1)?["texts_per_second"] as? Double) }
    let p50 = [1, 2].map { cell(reference(engine, "latency", threads: $0)?["p50_ms"] as? Double, "%.2f") }
    let p95 = [1, 2].map { cell(reference(engine, "latency", threads: $0)?["p95_ms"] as? Double, "%.2f") }
    table += "| \(engine) | \(throughput.joined(separator: " | ")) | \(p50.joined(separator: " / ")) ms | \(p95.joined(separator: " / ")) ms |\n"
}
table += "\nGFLOPS (whole forward pass, ours): " + rows.map { String(format: "%@ %.1f", $0.label, $0.gflops) }.joined(separator: "; ")
table += "\nOpenBLAS sgemm alone on the same shapes (M = \(batchTokens) tokens = batch 128): " + sgemmRows.filter { $0.contains("all four") }.joined(separator: "; ") + "\n"
print(table)
