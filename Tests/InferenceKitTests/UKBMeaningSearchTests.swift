import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// `ukb search` by meaning and words, `ukb similar`, and the fall-back to words when search by
/// meaning cannot run — against graph-store, vector-search and the gateway's indexer as processes.
@Suite("ukb search by meaning, over real processes", .serialized)
struct UKBMeaningSearchTests {
    func ukb(_ system: IndexedSystem, _ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), arguments, environment: [
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)",
            "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
            "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(system.gateway.port)",
            "KB_TEAM": "eng",
        ])
    }

    /// The entity names of `ukb search`'s text lines, in order.
    func names(_ output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init)  // score, then name
        }
    }

    @Test("hybrid by default, --semantic finds what shares no word with the query, --keyword is the graph's word search, results stay in the team; ukb similar; degraded to words when vector-search is down", .timeLimit(.minutes(5)))
    func searchByMeaning() async throws {
        let system = try await IndexedSystem()
        do {
            try await system.put("eng", [
                graphEntity("zstd", observations: ["A fast lossless compression library that makes data files much smaller"]),
                graphEntity("libpng", observations: ["Reads and writes PNG image files"]),
                graphEntity("circuit-breaker", type: "Pattern", observations: ["Stop calling a failing remote service for a while and fail fast instead"]),
                graphEntity("retry-with-backoff", type: "Pattern", observations: ["Call a failing remote service again after waiting longer each time"]),
            ])
            try await system.put("other", [graphEntity("gzip", observations: ["A compression library and tool that makes files smaller"])])
            try await system.waitUntilIndexed("five entities") { try await system.pointCount() == 5 }

            let semantic = try ukb(system, "search", "shrink my archives", "--semantic")
            #expect(semantic.status == 0, "\(semantic.stderr)")
            #expect(names(semantic.stdout).first == "zstd", "\(semantic.stdout)")
            #expect(!semantic.stdout.contains("gzip"), "another team's entity")
            let words = try ukb(system, "search", "shrink my archives", "--keyword")
            #expect(words.status == 0 && words.stdout.contains("no entities found"), "no entity holds these words: \(words.stdout)")

            let hybrid = try ukb(system, "search", "compression")
            #expect(hybrid.status == 0 && hybrid.stderr.isEmpty, "\(hybrid.stderr)")
            #expect(names(hybrid.stdout).first == "zstd")
            #expect(!hybrid.stdout.contains("gzip"))
            let patterns = try ukb(system, "search", "service keeps failing", "--type", "Pattern")
            #expect(Set(names(patterns.stdout)) == ["circuit-breaker", "retry-with-backoff"], "\(patterns.stdout)")

            let similar = try ukb(system, "similar", "circuit-breaker")
            #expect(similar.status == 0, "\(similar.stderr)")
            #expect(names(similar.stdout).first == "retry-with-backoff", "\(similar.stdout)")
            #expect(!names(similar.stdout).contains("circuit-breaker"), "not itself")
            let unknown = try ukb(system, "similar", "no-such-entity")
            #expect(unknown.status == 1 && unknown.stderr.contains("not indexed"), "\(unknown.stderr)")

            let both = try ukb(system, "search", "x", "--semantic", "--keyword")
            #expect(both.status != 0 && both.stderr.contains("exclude each other"))

            await system.vectors.stop(signal: SIGKILL)
            let degraded = try ukb(system, "search", "compression")
            #expect(degraded.status == 0)
            #expect(degraded.stderr.contains("degraded"), "\(degraded.stderr)")
            #expect(names(degraded.stdout) == ["zstd"], "the graph's word search: \(degraded.stdout)")
        } catch {
            await system.stop()
            throw error
        }
        await system.stop()
    }
}
