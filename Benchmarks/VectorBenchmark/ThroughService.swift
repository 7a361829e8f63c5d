// The real vector-search over loopback RPC with one client: used by the full benchmark (it starts
// its own service) and by `--rpc-service HOST:PORT` (a running one, for qdrant_bench.py's RPC row).
import BenchmarkSupport
import Foundation
import KBProto
import KBRPC

/// One `ef` measured through the service: recall@10 (nil without ground truth), queries/s and
/// latency quantiles in seconds, one query at a time.
struct ServiceRow { var ef: Int; var recall: Double?; var qps: Double; var p50: Double; var p99: Double }

/// The upsert rate (points/s, 1,000 per call, each call acknowledged = on disk) and one row per `ef`.
struct ServiceFigures { var upsertRate: Double; var rows: [ServiceRow] }

/// Creates `collection` (cosine, `m`, `efConstruction`), upserts `base` in calls of 1,000 (ids are
/// the row numbers as text), then runs every query once per `ef` with limit 10 and times each call.
/// `recall` scores the answers' ids (row numbers) against the ground truth when there is one.
/// The collection is deleted afterwards.
func measureOverRPC(
    _ client: RPCClient, collection: String, dimension: Int, m: Int, efConstruction: Int,
    base: ArraySlice<[Float]>, queries: [[Float]], efs: [Int], recall: ([[UInt32]]) -> Double?
) async throws -> ServiceFigures {
    _ = try? await client.call(VectorSearchMethods.deleteCollection, .with { $0.name = collection })
    _ = try await client.call(VectorSearchMethods.createCollection, .with {
        $0.config.name = collection; $0.config.dimension = Int32(dimension); $0.config.distance = .cosine
        $0.config.hnsw.m = Int32(m); $0.config.hnsw.efConstruct = Int32(efConstruction)
    })
    let start = ContinuousClock.now
    for first in stride(from: base.startIndex, to: base.endIndex, by: 1000) {
        _ = try await client.call(VectorSearchMethods.upsertPoints, .with {
            $0.collection = collection
            $0.points = (first..<min(first + 1000, base.endIndex)).map { index in .with { $0.id = String(index); $0.vector = base[index] } }
        })
    }
    let upsertRate = Double(base.count) / seconds(ContinuousClock.now - start)
    var rows: [ServiceRow] = []
    for ef in efs {
        var timings: [Double] = []
        var answers: [[UInt32]] = []
        let begin = ContinuousClock.now
        for query in queries {
            let t0 = ContinuousClock.now
            let response = try await client.call(VectorSearchMethods.search, .with { $0.collection = collection; $0.vector = query; $0.limit = 10; $0.ef = Int32(ef) })
            timings.append(seconds(ContinuousClock.now - t0))
            answers.append(response.results.compactMap { UInt32($0.point.id) })
        }
        let total = seconds(ContinuousClock.now - begin)
        timings.sort()
        rows.append(ServiceRow(ef: ef, recall: recall(answers), qps: Double(queries.count) / total, p50: percentile(timings, 0.5), p99: percentile(timings, 0.99)))
    }
    _ = try? await client.call(VectorSearchMethods.deleteCollection, .with { $0.name = collection })
    return ServiceFigures(upsertRate: upsertRate, rows: rows)
}

/// An RPC client for one caller on `host:port` (`KB_AUTH_TOKEN` from the environment when set).
func benchmarkClient(host: String, port: Int) -> RPCClient {
    var configuration = RPCClient.Configuration(host: host, port: port)
    configuration.connections = 1
    configuration.defaultTimeout = .seconds(600)
    if let token = ProcessInfo.processInfo.environment["KB_AUTH_TOKEN"], !token.isEmpty { configuration.authToken = token }
    return RPCClient(configuration: configuration)
}

/// `--rpc-service HOST:PORT`: the RPC row of `Benchmarks/QdrantBenchmark/qdrant_bench.py`, against
/// a running vector-search, on the first `--base` vectors and `--queries` queries; prints one JSON
/// object a line per `ef` (`--ef 64` or a list), nothing else on standard output.
func runAgainstRunningService(_ address: String, arguments: BenchmarkArguments, dimension: Int, base: [[Float]], queries: [[Float]], truth: [[Int32]]) async throws {
    let parts = address.split(separator: ":")
    guard parts.count == 2, let port = Int(parts[1]) else { throw BenchmarkFailure("--rpc-service takes HOST:PORT, not '\(address)'") }
    let count = min(arguments.integer("--base", default: base.count), base.count)
    let client = benchmarkClient(host: String(parts[0]), port: port)
    try await waitUntilReady("vector-search at \(address)", within: .seconds(60)) {
        (try? await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))) != nil
    }
    // The ground truth is for the whole file: recall only when every base vector is there.
    let figures = try await measureOverRPC(
        client, collection: arguments.string("--collection") ?? "bench-rpc", dimension: dimension,
        m: arguments.integer("--m", default: 16), efConstruction: arguments.integer("--ef-construction", default: 100),
        base: base[0..<count], queries: queries, efs: arguments.integers("--ef", default: [64])
    ) { answers in
        guard count == base.count else { return nil }
        var hits = 0
        for (index, answer) in answers.enumerated() {
            let expected = Set(truth[index].prefix(10).map { UInt32($0) })
            hits += answer.prefix(10).filter { expected.contains($0) }.count
        }
        return Double(hits) / Double(max(answers.count * 10, 1))
    }
    await client.close()
    for row in figures.rows {
        let object: [String: Any] = [
            "engine": "rpc", "ef": row.ef, "upsert_rate": figures.upsertRate, "qps": row.qps,
            "p50": row.p50, "p99": row.p99, "recall": row.recall.map { $0 as Any } ?? NSNull(), "points": count, "queries": queries.count,
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    }
}
