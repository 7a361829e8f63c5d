import Foundation
import KBTestSupport
import Testing

/// The inference benchmark still runs: its fake provider answers, and the real gateway in front
/// of it answers whole and streamed requests (no wrk, no LiteLLM, no timing).
@Suite("inference-benchmark, smoke")
struct InferenceBenchmarkSmokeTests {
    @Test("inference-benchmark --smoke starts the fake provider and the gateway, and both answer whole and streamed requests")
    func smoke() throws {
        let benchmark = builtProductsDirectory.appendingPathComponent("inference-benchmark")
        try #require(FileManager.default.isExecutableFile(atPath: benchmark.path), "build it first: swift build --build-tests")
        let result = try runProgram(benchmark, ["--smoke"])
        #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
        #expect(result.stdout.contains("smoke: the fake provider and inference-gateway answered whole and streamed requests"))
    }
}
