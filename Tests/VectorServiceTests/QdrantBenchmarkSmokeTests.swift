import Foundation
import KBTestSupport
import Testing

/// The Qdrant benchmark still runs end to end on the built executables: it starts vector-search,
/// and every engine's row comes out (no timing is checked).
@Suite("qdrant-bench, smoke")
struct QdrantBenchmarkSmokeTests {
    @Test("qdrant_bench.py on 300 points prints the REST (qdrant-client and plain HTTP), RPC and local-mode rows, each with figures")
    func smoke() throws {
        try #require(Embeddings.base.count >= 300, "the shared embeddings are missing")
        for product in ["vector-search", "vector-benchmark"] {
            try #require(FileManager.default.isExecutableFile(atPath: builtProductsDirectory.appendingPathComponent(product).path), "build it first: swift build --build-tests")
        }
        let script = packageRoot.appendingPathComponent("Benchmarks/QdrantBenchmark/qdrant_bench.py")
        let run = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), [
            "python3", script.path, "--bin-dir", builtProductsDirectory.path, "--data", Embeddings.directory.path,
            "--base", "300", "--queries", "20", "--local-queries", "5",
        ])
        #expect(run.status == 0, "stdout: \(run.stdout)\nstderr: \(run.stderr)")
        let rows = run.stdout.split(separator: "\n").filter { $0.hasPrefix("| vector-search") || $0.hasPrefix("| qdrant-client") }
        let engines = rows.map { $0.split(separator: "|")[0].trimmingCharacters(in: .whitespaces) }
        #expect(engines == [
            "vector-search REST, qdrant-client", "vector-search REST, plain HTTP (httpx)",
            "vector-search RPC (protobuf, Swift client)", "qdrant-client local mode (in-process, exact; 5 queries)",
        ], "\(run.stdout)")
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            // upsert, QPS, p50, p99: positive numbers.
            let figures = cells[1...4].map { Double($0.split(separator: " ")[0].replacingOccurrences(of: ",", with: "")) ?? 0 }
            #expect(figures.allSatisfy { $0 > 0 }, "\(row)")
            #expect(cells[5] == "n/a", "no recall without the whole base: \(row)")
        }
    }
}
